"""Rollouts: the canary rollouts of accepted candidates, their phase history and every
analysis of their steps.

A rollout's phase is stored as text (the state machine and its ``Phase`` enum live
in :mod:`retrain.rollout.lifecycle`). ``active`` is true until the rollout reaches
a final phase; a partial unique index allows one active rollout per model, so two
replicas starting one at once can never both succeed. Every transition writes its
history row in the caller's transaction, beside the alert it causes and the
registry change it makes; every analysis is stored with the decision it led to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
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
from drift.canary.check import Check  # the package imports SciPy for its tests


class RolloutRow(Base):
    """One rollout of ``canary_version_id`` against ``stable_version_id`` (the production
    version when it started). ``step`` indexes the configured steps; ``canary_percent``
    is the weight that step asks for; ``step_started_at`` starts the span its analysis
    judges and ``phase_deadline`` is when a step still without a verdict pauses.
    ``paused_from`` is the phase a paused rollout resumes; ``failed_checks`` counts the
    failed checks of its analyses; ``router_errors`` the retriable router errors since
    its last transition."""

    __tablename__ = "rollouts"
    __table_args__ = (
        one_active_per_model("uq_rollouts_active"),
        Index("ix_rollouts_model_created", "model", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("retrain_runs.id", ondelete="SET NULL"))
    stable_version_id: Mapped[int] = mapped_column(BigInteger)
    canary_version_id: Mapped[int] = mapped_column(BigInteger)
    phase: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    step: Mapped[int] = mapped_column(Integer)
    canary_percent: Mapped[int] = mapped_column(Integer)
    step_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the router applied the step's split (None: not yet): its analysis span
    # starts there, so events served at the step before never count for this one.
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    phase_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_from: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    failed_checks: Mapped[int] = mapped_column(Integer)
    router_errors: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RolloutPhaseRow(Base):
    """The history of a rollout: one row per phase (or step) entered, with why."""

    __tablename__ = "rollout_phases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RolloutAnalysisRow(Base):
    """One check of one analysis of a rollout's step, over event times in
    [``span_start``, ``span_end``): outcome, measured value, threshold, the sample sizes
    and the check's other numbers (``details``, JSON)."""

    __tablename__ = "rollout_analyses"
    __table_args__ = (Index("ix_rollout_analyses_rollout", "rollout_id", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    span_start: Mapped[datetime] = mapped_column(UTCDateTime)
    span_end: Mapped[datetime] = mapped_column(UTCDateTime)
    check: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float(precision=53))
    threshold: Mapped[float] = mapped_column(Float(precision=53))
    n_canary: Mapped[int] = mapped_column(BigInteger)
    n_stable: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[str] = mapped_column(Text)
    analysed_at: Mapped[datetime] = mapped_column(UTCDateTime)


@translated
class RolloutRepository(Repository[RolloutRow]):
    row = RolloutRow

    def start(
        self,
        model: str,
        run_id: int | None,
        stable_version_id: int,
        canary_version_id: int,
        phase: str,
        note: str,
        now: datetime,
    ) -> RolloutRow | None:
        """A new active rollout in ``phase``; None when the model has an active one."""
        row = RolloutRow(
            model=model,
            run_id=run_id,
            stable_version_id=stable_version_id,
            canary_version_id=canary_version_id,
            phase=phase,
            active=True,
            step=0,
            canary_percent=0,
            failed_checks=0,
            router_errors=0,
            created_at=now,
            updated_at=now,
        )
        try:
            with savepoint(self.session):
                self._add(row)
                self.session.add(
                    RolloutPhaseRow(
                        rollout_id=row.id, phase=phase, step=0, note=note, entered_at=now
                    )
                )
                self.session.flush()
        except IntegrityError as exc:
            if violates(exc, RolloutRow.__table__, "uq_rollouts_active"):
                return None
            raise
        return row

    def get(self, rollout_id: int, *, lock: bool = False) -> RolloutRow | None:
        """The rollout; ``lock`` holds its row until the transaction ends (PostgreSQL),
        so two replicas ticking at once advance it one after the other."""
        stmt = select(RolloutRow).where(RolloutRow.id == rollout_id)
        if lock:
            stmt = stmt.with_for_update()
        return self._one(stmt)

    def active(self, model: str | None = None) -> list[RolloutRow]:
        r = RolloutRow
        stmt = select(r).where(r.active.is_(True)).order_by(r.id)
        if model is not None:
            stmt = stmt.where(r.model == model)
        return self._list(stmt)

    def rollouts(self, model: str | None = None, limit: int = 50) -> list[RolloutRow]:
        """The newest ``limit`` rollouts, newest first."""
        r = RolloutRow
        stmt = select(r).order_by(r.id.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(r.model == model)
        return self._list(stmt)

    def of_run(self, run_id: int) -> list[int]:
        """The ids of the rollouts a run's accepted candidate started, oldest first
        (a scan: a deployment keeps a few rollouts per model and week)."""
        r = RolloutRow
        return list(self.session.scalars(select(r.id).where(r.run_id == run_id).order_by(r.id)))

    def page(
        self, model: str | None, active: bool | None, limit: int, offset: int
    ) -> list[RolloutRow]:
        """Rollouts newest first, of ``model`` and with ``active`` when given: up to
        ``limit`` after the first ``offset``."""
        r = RolloutRow
        stmt = select(r).order_by(r.id.desc()).limit(limit).offset(offset)
        if model is not None:
            stmt = stmt.where(r.model == model)
        if active is not None:
            stmt = stmt.where(r.active.is_(active))
        return self._list(stmt)

    def enter(
        self,
        rollout: RolloutRow,
        phase: str,
        note: str,
        now: datetime,
        *,
        final: bool = False,
    ) -> None:
        """Move ``rollout`` to ``phase`` (or record its new step) and write its history
        row; the caller commits both."""
        rollout.phase = phase
        rollout.updated_at = now
        rollout.router_errors = 0
        if final:
            rollout.active = False
            rollout.finished_at = now
            rollout.phase_deadline = None
        self.session.add(
            RolloutPhaseRow(
                rollout_id=rollout.id, phase=phase, step=rollout.step, note=note, entered_at=now
            )
        )
        self.session.flush()

    def record_applied(self, rollout_id: int, step: int, now: datetime) -> None:
        """Note that step ``step``'s split was applied; the first record stands, and a
        rollout that has moved on meanwhile is left as it is."""
        r = RolloutRow
        self.session.execute(
            update(r)
            .where(r.id == rollout_id, r.phase == "progressing", r.step == step)
            .where(r.applied_at.is_(None))
            .values(applied_at=now)
        )

    def history(self, rollout_id: int) -> list[RolloutPhaseRow]:
        p = RolloutPhaseRow
        stmt = select(p).where(p.rollout_id == rollout_id).order_by(p.id)
        return list(self.session.scalars(stmt).all())

    def add_analysis(
        self,
        rollout_id: int,
        step: int,
        span: tuple[datetime, datetime],
        checks: Iterable[Check],
        now: datetime,
    ) -> None:
        for c in checks:
            self.session.add(
                RolloutAnalysisRow(
                    rollout_id=rollout_id,
                    step=step,
                    span_start=span[0],
                    span_end=span[1],
                    check=c.name,
                    outcome=str(c.outcome),
                    value=c.value,
                    threshold=c.threshold,
                    n_canary=c.n_canary,
                    n_stable=c.n_stable,
                    reason=c.reason,
                    # Infinite values are kept: Python's JSON writes and reads them back.
                    details=json.dumps(dict(c.details), sort_keys=True),
                    analysed_at=now,
                )
            )
        self.session.flush()

    def analyses(self, rollout_id: int) -> list[RolloutAnalysisRow]:
        a = RolloutAnalysisRow
        stmt = select(a).where(a.rollout_id == rollout_id).order_by(a.id)
        return list(self.session.scalars(stmt).all())
