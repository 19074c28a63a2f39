"""Performance reports: one per (model, version, window), linked to the window's drift report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.errors import translated
from db.models import DriftReportRow, PerformanceReportRow
from db.repository import add_once
from drift.performance import PerformanceMetrics, PerformanceSketch
from drift.stats.degradation import DegradationVerdict


@dataclass(frozen=True, slots=True)
class PerformanceVerdict:
    """What judging one window's labelled outcomes produced, ready to be stored."""

    model: str
    model_version: str
    window_start: int
    window_seconds: int
    predicted: int
    labeled: int
    unlabeled: int
    sketch: PerformanceSketch
    metrics: PerformanceMetrics
    degradation: DegradationVerdict | None
    verdict: str
    alarms: Mapping[str, int] = field(default_factory=dict)  # detector -> alarms in the window
    concept_drift: bool | None = None

    @property
    def coverage(self) -> float | None:
        """Labelled share of the window's predictions."""
        return self.labeled / self.predicted if self.predicted else None


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


@translated
class PerformanceReportRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, v: PerformanceVerdict, now: datetime) -> int | None:
        """Store ``v``; None (nothing written) when the window already has a report."""
        start = _utc(v.window_start)
        d = DriftReportRow
        drift_id = self.session.scalar(
            select(d.id)
            .where(d.model == v.model, d.model_version == v.model_version, d.window_start == start)
            .order_by(d.id.desc())
            .limit(1)
        )
        row = PerformanceReportRow(
            model=v.model,
            model_version=v.model_version,
            window_start=start,
            window_end=_utc(v.window_start + v.window_seconds),
            drift_report_id=drift_id,
            created_at=now,
            **_judged(v),
        )
        if not add_once(self.session, row, "uq_performance_reports_window"):
            return None
        return row.id

    def revise(self, v: PerformanceVerdict, now: datetime) -> tuple[int, int] | None:
        """Rewrite the window's stored report with ``v`` as its next revision (all but the
        streaming detectors' alarms and concept-drift verdict, which stand); the
        report's id and revision, or None when the window has no report yet (its first
        report, written once the window is final, will hold what ``v`` holds)."""
        r = PerformanceReportRow
        row = self.session.scalars(
            select(r).where(
                r.model == v.model,
                r.model_version == v.model_version,
                r.window_start == _utc(v.window_start),
            )
        ).one_or_none()
        if row is None:
            return None
        for name, value in _judged(v).items():
            # The streaming detectors watched the in-horizon pairs only, all joined before
            # the first report: their alarms and verdict stand, whatever came later.
            if name not in _DETECTOR_COLUMNS:
                setattr(row, name, value)
        row.revision += 1
        row.revised_at = now
        self.session.flush()
        return row.id, row.revision

    def reported(self, model: str, since: datetime) -> set[tuple[str, datetime]]:
        r = PerformanceReportRow
        rows = self.session.execute(
            select(r.model_version, r.window_start).where(r.model == model, r.window_start >= since)
        )
        return {(v, s) for v, s in rows}

    def rows(self, model: str | None = None, limit: int = 100) -> list[PerformanceReportRow]:
        """The newest ``limit`` reports, oldest first."""
        r = PerformanceReportRow
        stmt = select(r).order_by(r.window_start.desc(), r.id.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(r.model == model)
        return list(reversed(self.session.scalars(stmt).all()))


_DETECTOR_COLUMNS = frozenset({"alarms", "alarm_detectors", "concept_drift"})


def _judged(v: PerformanceVerdict) -> dict[str, Any]:
    """The columns of a report that judging the window decides (all but its identity)."""
    m, deg = v.metrics, v.degradation
    return {
        "task": str(m.task),
        "predicted": v.predicted,
        "labeled": v.labeled,
        "unlabeled": v.unlabeled,
        "label_coverage": v.coverage,
        "accuracy": m.accuracy,
        "precision": m.precision,
        "recall": m.recall,
        "f1": m.f1,
        "roc_auc": m.roc_auc,
        "log_loss": m.log_loss,
        "rmse": m.rmse,
        "mae": m.mae,
        "mape": m.mape,
        "degradation_metric": None if deg is None else deg.metric,
        "reference_value": None if deg is None else deg.reference,
        "current_value": None if deg is None else deg.current,
        "statistic": None if deg is None else deg.statistic,
        "p_value": None if deg is None else deg.p_value,
        "degraded": None if deg is None else deg.degraded,
        "verdict": v.verdict,
        "sketch": v.sketch.to_bytes(),
        "alarms": sum(v.alarms.values()),
        "alarm_detectors": ",".join(sorted(name for name, n in v.alarms.items() if n)),
        "concept_drift": v.concept_drift,
    }
