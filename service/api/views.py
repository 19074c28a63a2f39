"""Stored rows read for the API and turned into its bodies (one short transaction each)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import DriftReportRow, PerformanceReportRow
from db.registry import ModelVersionRow, Stage
from db.runs import RetrainRunRow
from service.api.schemas import DriftSummary, PerformanceSummary, RunSummary, Version


def version(v: ModelVersionRow) -> Version:
    return Version(
        id=v.id,
        version=v.version,
        stage=v.stage,
        uri=v.uri,
        sha256=v.sha256,
        metrics=v.metric_values,
        run_id=v.run_id,
        created_at=v.created_at,
    )


def drift(r: DriftReportRow) -> DriftSummary:
    return DriftSummary(
        id=r.id,
        model=r.model,
        model_version=r.model_version,
        window_start=r.window_start,
        window_end=r.window_end,
        events=r.events,
        features_drifted=r.features_drifted,
        features_judged=r.features_judged,
        drifted_share=r.drifted_share,
        dataset_drift=r.dataset_drift,
        confirmed=r.confirmed,
        prediction_drifted=r.prediction_drifted,
        created_at=r.created_at,
    )


def performance(r: PerformanceReportRow) -> PerformanceSummary:
    return PerformanceSummary(
        id=r.id,
        model=r.model,
        model_version=r.model_version,
        window_start=r.window_start,
        window_end=r.window_end,
        task=r.task,
        predicted=r.predicted,
        labeled=r.labeled,
        label_coverage=r.label_coverage,
        accuracy=r.accuracy,
        roc_auc=r.roc_auc,
        rmse=r.rmse,
        mae=r.mae,
        degraded=r.degraded,
        verdict=r.verdict,
        concept_drift=r.concept_drift,
    )


def run(r: RetrainRunRow) -> RunSummary:
    return RunSummary(
        id=r.id,
        model=r.model,
        phase=r.phase,
        active=r.active,
        trigger=r.trigger,
        reason=r.reason,
        verdict=r.verdict,
        failure_reason=r.failure_reason,
        created_at=r.created_at,
        finished_at=r.finished_at,
    )


def candidates(session: Session, model: str) -> list[ModelVersionRow]:
    v = ModelVersionRow
    stmt = (
        select(v)
        .where(v.model == model, v.stage.in_([str(Stage.CANDIDATE), str(Stage.CANARY)]))
        .order_by(v.id.desc())
    )
    return list(session.scalars(stmt).all())


def drift_page(
    session: Session,
    model: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> list[DriftReportRow]:
    """Reports of windows starting in [start, end), newest first; one extra row tells if
    another page follows."""
    r = DriftReportRow
    stmt = select(r).where(r.model == model)
    if start is not None:
        stmt = stmt.where(r.window_start >= start)
    if end is not None:
        stmt = stmt.where(r.window_start < end)
    stmt = stmt.order_by(r.window_start.desc(), r.id.desc()).offset(offset).limit(limit + 1)
    return list(session.scalars(stmt).all())


def performance_page(
    session: Session,
    model: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> list[PerformanceReportRow]:
    r = PerformanceReportRow
    stmt = select(r).where(r.model == model)
    if start is not None:
        stmt = stmt.where(r.window_start >= start)
    if end is not None:
        stmt = stmt.where(r.window_start < end)
    stmt = stmt.order_by(r.window_start.desc(), r.id.desc()).offset(offset).limit(limit + 1)
    return list(session.scalars(stmt).all())


def run_page(session: Session, model: str | None, limit: int, offset: int) -> list[RetrainRunRow]:
    r = RetrainRunRow
    stmt = select(r)
    if model is not None:
        stmt = stmt.where(r.model == model)
    stmt = stmt.order_by(r.id.desc()).offset(offset).limit(limit + 1)
    return list(session.scalars(stmt).all())


def latest_drift(session: Session, model: str) -> DriftReportRow | None:
    rows = drift_page(session, model, None, None, 1, 0)
    return rows[0] if rows else None


def latest_performance(session: Session, model: str) -> PerformanceReportRow | None:
    rows = performance_page(session, model, None, None, 1, 0)
    return rows[0] if rows else None
