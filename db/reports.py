"""Drift reports: one per (model, version, window, profile), with per-feature rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import translated, violates
from db.models import DriftFeatureRow, DriftReportRow, ReportHtmlRow
from db.repository import savepoint
from drift.report import DriftReport, FeatureDrift


@dataclass(frozen=True, slots=True)
class WindowVerdict:
    """What evaluating one closed window produced, ready to be stored.

    ``source`` says what the verdict was computed from: ``sketch`` (the merged
    partition sketches) or ``sample`` (the window's row sample, when the window
    was ingested on bins other than the profile's).
    """

    model: str
    model_version: str
    window_start: int
    window_seconds: int
    profile_id: int
    profile_version: int
    source: str
    events: int
    report: DriftReport
    prediction: FeatureDrift | None
    confirmed: bool
    sample: bytes | None


@dataclass(frozen=True, slots=True)
class ReportSummary:
    id: int
    model: str
    model_version: str
    window_start: datetime
    window_end: datetime
    profile_version: int
    source: str
    events: int
    features_drifted: int
    features_judged: int
    drifted_share: float | None
    dataset_drift: bool | None
    confirmed: bool
    prediction_drifted: bool | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FeatureResult:
    feature: str
    kind: str
    method: str | None
    score: float | None
    p_value: float | None
    p_value_adjusted: float | None
    threshold: float | None
    drifted: bool | None
    reference_count: int
    current_count: int
    reference_null_share: float
    current_null_share: float
    unseen_categories: tuple[str, ...]

    @property
    def severity(self) -> float:
        """How far past its threshold the feature is (larger is worse), for ranking."""
        if self.threshold is None:
            return 0.0
        if self.p_value is not None:
            return self.threshold / max(self.p_value_adjusted or self.p_value, 1e-300)
        return (self.score or 0.0) / self.threshold if self.threshold else 0.0


@dataclass(frozen=True, slots=True)
class ReportDetail:
    summary: ReportSummary
    profile_id: int
    reference_rows: int
    prediction_method: str | None
    prediction_score: float | None
    prediction_p_value: float | None
    features: tuple[FeatureResult, ...]
    sample: bytes | None

    def top_drifted(self, n: int = 3) -> list[FeatureResult]:
        drifted = [f for f in self.features if f.drifted]
        return sorted(drifted, key=lambda f: f.severity, reverse=True)[:n]


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _summary(r: DriftReportRow) -> ReportSummary:
    return ReportSummary(
        r.id,
        r.model,
        r.model_version,
        r.window_start,
        r.window_end,
        r.profile_version,
        r.source,
        r.events,
        r.features_drifted,
        r.features_judged,
        r.drifted_share,
        r.dataset_drift,
        r.confirmed,
        r.prediction_drifted,
        r.created_at,
    )


@translated
class DriftReportRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, verdict: WindowVerdict, now: datetime) -> int | None:
        """Store ``verdict``; None (and nothing written) when the window already has one.

        The insert runs in a savepoint, so losing the race to another replica
        leaves the caller's transaction usable.
        """
        report = verdict.report
        judged = [f for f in report.features if f.drifted is not None]
        pred = verdict.prediction
        row = DriftReportRow(
            model=verdict.model,
            model_version=verdict.model_version,
            window_start=_utc(verdict.window_start),
            window_end=_utc(verdict.window_start + verdict.window_seconds),
            profile_id=verdict.profile_id,
            profile_version=verdict.profile_version,
            source=verdict.source,
            events=verdict.events,
            reference_rows=report.reference_rows,
            features_drifted=sum(1 for f in judged if f.drifted),
            features_judged=len(judged),
            drifted_share=report.drifted_share,
            dataset_drift=report.dataset_drift,
            confirmed=verdict.confirmed,
            prediction_method=None if pred is None or pred.method is None else str(pred.method),
            prediction_score=None if pred is None else pred.score,
            prediction_p_value=None if pred is None else pred.p_value,
            prediction_drifted=None if pred is None else pred.drifted,
            current_sample=verdict.sample,
            created_at=now,
        )
        try:
            with savepoint(self.session):
                self.session.add(row)
                self.session.flush()
                # One bulk insert, no ORM object per feature: as 30 unit-of-work objects
                # they were the largest part of judging a window (0.2 ms each).
                if report.features:
                    self.session.execute(
                        insert(DriftFeatureRow),
                        [_feature_row(row.id, i, f) for i, f in enumerate(report.features)],
                    )
        except IntegrityError as exc:
            if violates(exc, DriftReportRow.__table__, "uq_drift_reports_window"):
                return None
            raise
        return row.id

    def reported(self, model: str, profile_id: int, since: datetime) -> set[tuple[str, datetime]]:
        """(version, window start) of the windows from ``since`` on already reported."""
        r = DriftReportRow
        rows = self.session.execute(
            select(r.model_version, r.window_start).where(
                r.model == model, r.profile_id == profile_id, r.window_start >= since
            )
        )
        return {(v, s) for v, s in rows}

    def previous_flags(
        self, model: str, model_version: str, profile_id: int, before: datetime, limit: int
    ) -> list[bool | None]:
        """Dataset-drift flags of the ``limit`` windows before ``before``, newest first."""
        r = DriftReportRow
        return list(
            self.session.scalars(
                select(r.dataset_drift)
                .where(
                    r.model == model,
                    r.model_version == model_version,
                    r.profile_id == profile_id,
                    r.window_start < before,
                )
                .order_by(r.window_start.desc())
                .limit(limit)
            )
        )

    def summaries(self, model: str | None = None, limit: int = 100) -> list[ReportSummary]:
        """The newest ``limit`` reports, returned oldest first."""
        r = DriftReportRow
        stmt = select(r).order_by(r.window_start.desc(), r.id.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(r.model == model)
        return [_summary(row) for row in reversed(self.session.scalars(stmt).all())]

    def get(self, report_id: int) -> ReportDetail | None:
        row = self.session.get(DriftReportRow, report_id)
        if row is None:
            return None
        features = self.session.scalars(
            select(DriftFeatureRow)
            .where(DriftFeatureRow.report_id == report_id)
            .order_by(DriftFeatureRow.position)
        ).all()
        return ReportDetail(
            summary=_summary(row),
            profile_id=row.profile_id,
            reference_rows=row.reference_rows,
            prediction_method=row.prediction_method,
            prediction_score=row.prediction_score,
            prediction_p_value=row.prediction_p_value,
            features=tuple(_result(f) for f in features),
            sample=row.current_sample,
        )

    def latest_ids(self) -> dict[str, int]:
        """Per model, the id of the report of its newest window."""
        r = DriftReportRow
        out: dict[str, int] = {}
        for model, report_id in self.session.execute(
            select(r.model, r.id).order_by(r.model, r.window_start, r.id)
        ):
            out[model] = report_id
        return out

    def rendered(self) -> dict[str, int]:
        """Per model, the report whose HTML is stored."""
        return dict(
            self.session.execute(select(ReportHtmlRow.model, ReportHtmlRow.report_id)).all()
        )

    def store_html(self, model: str, report_id: int, html: bytes, now: datetime) -> None:
        row = self.session.get(ReportHtmlRow, model)
        if row is None:
            self.session.add(
                ReportHtmlRow(model=model, report_id=report_id, html=html, rendered_at=now)
            )
        else:
            row.report_id, row.html, row.rendered_at = report_id, html, now
        self.session.flush()

    def html(self, model: str) -> tuple[int, bytes] | None:
        row = self.session.get(ReportHtmlRow, model)
        return None if row is None else (row.report_id, row.html)


def _feature_row(report_id: int, position: int, f: FeatureDrift) -> dict[str, Any]:
    return {
        "report_id": report_id,
        "feature": f.name,
        "position": position,
        "kind": str(f.kind),
        "method": None if f.method is None else str(f.method),
        "score": f.score,
        "p_value": f.p_value,
        "p_value_adjusted": f.p_value_adjusted,
        "threshold": f.threshold,
        "drifted": f.drifted,
        "reference_count": f.reference_count,
        "current_count": f.current_count,
        "reference_null_share": f.reference_null_share,
        "current_null_share": f.current_null_share,
        "unseen_categories": json.dumps(list(f.unseen_categories)),
    }


def _result(f: DriftFeatureRow) -> FeatureResult:
    return FeatureResult(
        f.feature,
        f.kind,
        f.method,
        f.score,
        f.p_value,
        f.p_value_adjusted,
        f.threshold,
        f.drifted,
        f.reference_count,
        f.current_count,
        f.reference_null_share,
        f.current_null_share,
        tuple(json.loads(f.unseen_categories)),
    )
