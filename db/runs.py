"""Retraining runs: the run rows, their phase history and gate results.

A run's phase is stored as text (the state machine and its ``Phase`` enum live
in :mod:`retrain.lifecycle`). ``active`` is true until the run reaches a final
phase; a partial unique index allows one active run per model, so two
replicas deciding at once can never start two. Every transition writes its
history row in the caller's transaction, and the caller queues the alert it causes
there too (:class:`db.outbox.AlertOutbox`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, BigId, UTCDateTime, one_active_per_model
from db.errors import translated, violates
from db.repository import Repository, savepoint


class RetrainRunRow(Base):
    """One retraining run. ``data_from``/``data_to`` bound the event times it trains on;
    ``phase_deadline`` is when the current phase times out; log tails are the jobs'.
    ``train_launched_at``/``validate_launched_at`` say a job's launch returned: a job the
    executor no longer finds after that was lost, and is never launched a second time."""

    __tablename__ = "retrain_runs"
    __table_args__ = (
        one_active_per_model("uq_retrain_runs_active"),
        Index("ix_retrain_runs_model_created", "model", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    phase: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    trigger: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    data_from: Mapped[datetime] = mapped_column(UTCDateTime)
    data_to: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the change the run answers began (None: a schedule or a request), and why
    # [data_from, data_to] is the range it trains on.
    change_onset: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_note: Mapped[str | None] = mapped_column(Text)
    data_uri: Mapped[str | None] = mapped_column(Text)
    data_rows: Mapped[int | None] = mapped_column(BigInteger)
    champion_version_id: Mapped[int | None] = mapped_column(BigInteger)
    candidate_version_id: Mapped[int | None] = mapped_column(BigInteger)
    verdict: Mapped[str | None] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    train_log_tail: Mapped[str | None] = mapped_column(Text)
    validate_log_tail: Mapped[str | None] = mapped_column(Text)
    phase_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    train_launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    validate_launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def launched_at(self, mode: str) -> datetime | None:
        """When the ``mode`` job's launch was recorded (``train`` or ``validate``)."""
        return {"train": self.train_launched_at, "validate": self.validate_launched_at}[mode]


class RunPhaseRow(Base):
    """The phase history of a run: one row per phase entered, with why."""

    __tablename__ = "run_phases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("retrain_runs.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ValidationResultRow(Base):
    """One gate's check of a run's candidate: measured values, threshold, outcome."""

    __tablename__ = "validation_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("retrain_runs.id", ondelete="CASCADE"))
    gate: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str | None] = mapped_column(String(32))
    slice: Mapped[str | None] = mapped_column(String(200))
    champion_value: Mapped[float | None] = mapped_column(Float(precision=53))
    candidate_value: Mapped[float | None] = mapped_column(Float(precision=53))
    threshold: Mapped[float] = mapped_column(Float(precision=53))
    passed: Mapped[bool] = mapped_column(Boolean)


@dataclass(frozen=True, slots=True)
class GateRecord:
    gate: str
    metric: str | None
    slice: str | None
    champion: float | None
    candidate: float | None
    threshold: float
    passed: bool


@translated
class RunRepository(Repository[RetrainRunRow]):
    row = RetrainRunRow

    def start(
        self,
        model: str,
        trigger: str,
        reason: str,
        data_from: datetime,
        data_to: datetime,
        phase: str,
        now: datetime,
        *,
        change_onset: datetime | None = None,
        data_note: str | None = None,
    ) -> RetrainRunRow | None:
        """A new active run in ``phase``; None when the model has an active run already."""
        row = RetrainRunRow(
            change_onset=change_onset,
            data_note=data_note,
            model=model,
            phase=phase,
            active=True,
            trigger=trigger,
            reason=reason,
            data_from=data_from,
            data_to=data_to,
            created_at=now,
            updated_at=now,
        )
        try:
            with savepoint(self.session):
                self._add(row)
                self.session.add(
                    RunPhaseRow(run_id=row.id, phase=phase, note=reason, entered_at=now)
                )
                self.session.flush()
        except IntegrityError as exc:
            if violates(exc, RetrainRunRow.__table__, "uq_retrain_runs_active"):
                return None
            raise
        return row

    def get(self, run_id: int, *, lock: bool = False) -> RetrainRunRow | None:
        """The run; ``lock`` holds its row until the transaction ends (PostgreSQL), so two
        replicas ticking at once advance it one after the other."""
        stmt = select(RetrainRunRow).where(RetrainRunRow.id == run_id)
        if lock:
            stmt = stmt.with_for_update()
        return self._one(stmt)

    def active(self, model: str | None = None) -> list[RetrainRunRow]:
        r = RetrainRunRow
        stmt = select(r).where(r.active.is_(True)).order_by(r.id)
        if model is not None:
            stmt = stmt.where(r.model == model)
        return self._list(stmt)

    def latest(self, model: str) -> RetrainRunRow | None:
        """The model's newest run, finished or not."""
        r = RetrainRunRow
        return self._first(select(r).where(r.model == model).order_by(r.id.desc()).limit(1))

    def last_finished_at(self, model: str) -> datetime | None:
        r = RetrainRunRow
        return self.session.scalars(
            select(r.finished_at)
            .where(r.model == model, r.finished_at.is_not(None))
            .order_by(r.finished_at.desc())
            .limit(1)
        ).first()

    def runs(self, model: str | None = None, limit: int = 50) -> list[RetrainRunRow]:
        """The newest ``limit`` runs, newest first."""
        r = RetrainRunRow
        stmt = select(r).order_by(r.id.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(r.model == model)
        return self._list(stmt)

    def enter(
        self,
        run: RetrainRunRow,
        phase: str,
        note: str,
        now: datetime,
        *,
        final: bool = False,
        deadline: datetime | None = None,
    ) -> None:
        """Move ``run`` to ``phase`` and write its history row (the caller commits both)."""
        run.phase = phase
        run.updated_at = now
        run.phase_deadline = deadline
        if final:
            run.active = False
            run.finished_at = now
        self.session.add(RunPhaseRow(run_id=run.id, phase=phase, note=note, entered_at=now))
        self.session.flush()

    def record_launch(self, run_id: int, mode: str, now: datetime) -> None:
        """Note that the run's ``mode`` job (train or validate) was launched; the first
        record stands, so a later adoption of the same job changes nothing."""
        r = RetrainRunRow
        column = {"train": r.train_launched_at, "validate": r.validate_launched_at}[mode]
        self.session.execute(
            update(r).where(r.id == run_id, column.is_(None)).values({column: now})
        )

    def history(self, run_id: int) -> list[RunPhaseRow]:
        p = RunPhaseRow
        return list(self.session.scalars(select(p).where(p.run_id == run_id).order_by(p.id)).all())

    def add_gates(self, run_id: int, records: Iterable[GateRecord]) -> None:
        for g in records:
            self.session.add(
                ValidationResultRow(
                    run_id=run_id,
                    gate=g.gate,
                    metric=g.metric,
                    slice=g.slice,
                    champion_value=g.champion,
                    candidate_value=g.candidate,
                    threshold=g.threshold,
                    passed=g.passed,
                )
            )
        self.session.flush()

    def gates(self, run_id: int) -> list[ValidationResultRow]:
        v = ValidationResultRow
        return list(self.session.scalars(select(v).where(v.run_id == run_id).order_by(v.id)).all())
