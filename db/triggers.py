"""Trigger decisions and what the retrain policy reads to make them.

A decision is stored once per cause, a cause being (model, kind, key): the
newest report of a drift streak, a degraded performance report, a
concept-drift alarm, a cron fire time or a manual request. The unique key is
what keeps two replicas, or a tick repeated after a crash, from acting twice
on one cause: the second insert is refused and the second decider stands
down. Suppressed decisions are stored too, with why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from db.base import Base, BigId, UTCDateTime
from db.errors import translated
from db.models import (
    ConceptDriftAlarmRow,
    DriftReportRow,
    PerformanceAggregate,
    PerformanceReportRow,
)
from db.repository import Repository


class TriggerDecision(StrEnum):
    """What became of a cause: it started a run, or it did not (and the row says why)."""

    FIRED = "fired"
    SUPPRESSED = "suppressed"


class TriggerDecisionRow(Base):
    """Whether one cause started a run (``fired``, ``run_id`` set) or not (``suppressed``,
    ``reason`` says why). ``evidence`` is JSON: every report and alarm id behind the cause;
    the newest of each kind is also a foreign key."""

    __tablename__ = "trigger_decisions"
    __table_args__ = (
        UniqueConstraint("model", "cause_kind", "cause_key", name="uq_trigger_decisions_cause"),
        # Deleting an alarm or a report clears the decisions' links to it (ON DELETE SET
        # NULL): per deleted row a lookup on its column, a scan of the table without these.
        Index("ix_trigger_decisions_concept_alarm_id", "concept_alarm_id"),
        Index("ix_trigger_decisions_drift_report_id", "drift_report_id"),
        Index("ix_trigger_decisions_performance_report_id", "performance_report_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    cause_kind: Mapped[str] = mapped_column(String(32))
    cause_key: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    drift_report_id: Mapped[int | None] = mapped_column(
        ForeignKey("drift_reports.id", ondelete="SET NULL")
    )
    performance_report_id: Mapped[int | None] = mapped_column(
        ForeignKey("performance_reports.id", ondelete="SET NULL")
    )
    concept_alarm_id: Mapped[int | None] = mapped_column(
        ForeignKey("concept_drift_alarms.id", ondelete="SET NULL")
    )
    evidence: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("retrain_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def evidence_ids(self) -> dict[str, list[int]]:
        loaded: dict[str, list[int]] = json.loads(self.evidence)
        return loaded


@dataclass(frozen=True, slots=True)
class Cause:
    """Something that may start a run. ``evidence`` maps drift_reports,
    performance_reports and concept_drift_alarms to the ids behind it; ``onset`` is
    the event time the change it reports began (None for schedules and requests)."""

    model: str
    kind: str
    key: str
    summary: str
    evidence: Mapping[str, Sequence[int]]
    onset: datetime | None = None

    def newest(self, table: str) -> int | None:
        ids = self.evidence.get(table) or ()
        return max(ids) if ids else None


@translated
class DecisionRepository(Repository[TriggerDecisionRow]):
    row = TriggerDecisionRow

    def get(self, cause: Cause) -> TriggerDecisionRow | None:
        d = TriggerDecisionRow
        return self._one(
            select(d).where(
                d.model == cause.model, d.cause_kind == cause.kind, d.cause_key == cause.key
            )
        )

    def fire(self, decision_id: int, reason: str, run_id: int) -> bool:
        """Turn a suppressed decision into the one that started ``run_id``; False when it is
        no longer suppressed (another replica fired it): compare-and-set on the row."""
        d = TriggerDecisionRow
        result = self.session.execute(
            update(d)
            .where(
                d.id == decision_id,
                d.decision == TriggerDecision.SUPPRESSED,
                d.run_id.is_(None),
            )
            .values(decision=TriggerDecision.FIRED, reason=reason, run_id=run_id)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def add(
        self,
        cause: Cause,
        decision: TriggerDecision,
        reason: str,
        now: datetime,
        run_id: int | None = None,
    ) -> TriggerDecisionRow | None:
        """Store the decision on ``cause``; None when the cause was decided already."""
        row = TriggerDecisionRow(
            model=cause.model,
            cause_kind=cause.kind,
            cause_key=cause.key,
            decision=decision,
            reason=reason,
            drift_report_id=cause.newest("drift_reports"),
            performance_report_id=cause.newest("performance_reports"),
            concept_alarm_id=cause.newest("concept_drift_alarms"),
            evidence=json.dumps({k: list(v) for k, v in cause.evidence.items()}, sort_keys=True),
            run_id=run_id,
            created_at=now,
        )
        if not self._add_once(row, "uq_trigger_decisions_cause"):
            return None
        return row

    def for_run(self, run_id: int) -> TriggerDecisionRow | None:
        d = TriggerDecisionRow
        return self._first(select(d).where(d.run_id == run_id))

    def decisions(self, model: str | None = None, limit: int = 100) -> list[TriggerDecisionRow]:
        """The newest ``limit`` decisions, oldest first."""
        d = TriggerDecisionRow
        stmt = select(d).order_by(d.id.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(d.model == model)
        return list(reversed(self.session.scalars(stmt).all()))

    def last_of_kind(self, model: str, kind: str) -> TriggerDecisionRow | None:
        d = TriggerDecisionRow
        return self._first(
            select(d).where(d.model == model, d.cause_kind == kind).order_by(d.id.desc()).limit(1)
        )


# How many reports back the start of a streak is looked for.
_ONSET_LOOKBACK = 2000


def _streak_start(rows: Iterable[Any]) -> datetime | None:
    """The oldest window start of the leading run of flagged rows (newest first)."""
    start: datetime | None = None
    for window_start, flagged in rows:
        if not flagged:
            break
        start = window_start
    return start


@translated
class TriggerInputs:
    """What the policy reads about a model: drift streaks, verdicts, alarms, labels."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def drift_streak(self, model: str, k: int) -> list[DriftReportRow]:
        """The model's newest ``k`` drift reports (newest first) when all ``k`` found
        dataset drift; else an empty list."""
        r = DriftReportRow
        rows = list(
            self.session.scalars(
                select(r)
                .where(r.model == model)
                .order_by(r.window_start.desc(), r.id.desc())
                .limit(k)
            ).all()
        )
        if len(rows) < k or not all(row.dataset_drift for row in rows):
            return []
        return rows

    def drift_onset(self, model: str) -> datetime | None:
        """The first window of the model's newest unbroken run of dataset-drift reports."""
        r = DriftReportRow
        rows = self.session.execute(
            select(r.window_start, r.dataset_drift)
            .where(r.model == model)
            .order_by(r.window_start.desc(), r.id.desc())
            .limit(_ONSET_LOOKBACK)
        )
        return _streak_start(rows)

    def degraded_onset(self, model: str) -> datetime | None:
        """The first window of the model's newest unbroken run of degraded reports."""
        p = PerformanceReportRow
        rows = self.session.execute(
            select(p.window_start, p.degraded)
            .where(p.model == model)
            .order_by(p.window_start.desc(), p.id.desc())
            .limit(_ONSET_LOOKBACK)
        )
        return _streak_start(rows)

    def first_alarm_after(self, model: str, after: datetime | None) -> datetime | None:
        """The prediction time of the model's first alarm after ``after``."""
        a = ConceptDriftAlarmRow
        stmt = select(func.min(a.prediction_time)).where(a.model == model)
        if after is not None:
            stmt = stmt.where(a.prediction_time > after)
        first: datetime | None = self.session.scalar(stmt)
        return first

    def newest_degraded(self, model: str) -> PerformanceReportRow | None:
        p = PerformanceReportRow
        return self.session.scalars(
            select(p)
            .where(p.model == model, p.degraded.is_(True))
            .order_by(p.window_start.desc(), p.id.desc())
            .limit(1)
        ).first()

    def newest_alarm(self, model: str) -> ConceptDriftAlarmRow | None:
        a = ConceptDriftAlarmRow
        return self.session.scalars(
            select(a).where(a.model == model).order_by(a.id.desc()).limit(1)
        ).first()

    def labeled_since(self, model: str, since: datetime | None) -> int:
        """Joined (labelled) predictions of the model in windows ending after ``since``.

        The window holding ``since`` counts: from a change onset inclusive, so a cause
        need not wait a whole window for the labels of the changed world. From a
        previous run's data end (a window's end), the windows after it.
        """
        pa = PerformanceAggregate
        stmt = select(func.coalesce(func.sum(pa.labeled), 0)).where(pa.model == model)
        if since is not None:
            stmt = stmt.where(pa.window_end > since)
        return int(self.session.scalar(stmt) or 0)

    def labeled_windows(
        self, model: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime, int]]:
        """(window start, window end, labelled predictions) of each of the model's windows
        overlapping [start, end] that holds labels, every version and partition summed,
        oldest first."""
        pa = PerformanceAggregate
        rows = self.session.execute(
            select(pa.window_start, pa.window_end, func.sum(pa.labeled))
            .where(
                pa.model == model,
                pa.window_end > start,
                pa.window_start < end,
                pa.labeled > 0,
            )
            .group_by(pa.window_start, pa.window_end)
            .order_by(pa.window_start)
        )
        return [(s, e, int(n)) for s, e, n in rows]

    def newest_labeled_end(self, model: str) -> datetime | None:
        """The end of the newest window holding labelled predictions of the model."""
        pa = PerformanceAggregate
        newest: datetime | None = self.session.scalar(
            select(func.max(pa.window_end)).where(pa.model == model, pa.labeled > 0)
        )
        return newest
