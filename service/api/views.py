"""Stored rows read for the API and turned into its bodies (one short transaction each)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import DriftReportRow, PerformanceReportRow
from db.registry import ModelVersionRow, Stage
from db.reports import FeatureResult
from db.runs import RetrainRunRow
from service.api.schemas import DriftSummary, FeatureBody, PerformanceSummary, RunSummary, Version

_Report = TypeVar("_Report", DriftReportRow, PerformanceReportRow)


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
    return DriftSummary.model_validate(r, from_attributes=True)


def feature(f: FeatureResult) -> FeatureBody:
    return FeatureBody(
        feature=f.feature,
        kind=f.kind,
        method=f.method,
        score=f.score,
        p_value=f.p_value,
        threshold=f.threshold,
        drifted=f.drifted,
        reference_count=f.reference_count,
        current_count=f.current_count,
        unseen_categories=list(f.unseen_categories),
    )


def performance(r: PerformanceReportRow) -> PerformanceSummary:
    return PerformanceSummary.model_validate(r, from_attributes=True)


def run(r: RetrainRunRow) -> RunSummary:
    return RunSummary.model_validate(r, from_attributes=True)


def candidates(session: Session, model: str) -> list[ModelVersionRow]:
    v = ModelVersionRow
    stmt = (
        select(v)
        .where(v.model == model, v.stage.in_([str(Stage.CANDIDATE), str(Stage.CANARY)]))
        .order_by(v.id.desc())
    )
    return list(session.scalars(stmt).all())


def report_page(
    session: Session,
    kind: type[_Report],
    model: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> list[_Report]:
    """Reports of windows starting in [start, end), newest first; one extra row tells if
    another page follows."""
    stmt = select(kind).where(kind.model == model)
    if start is not None:
        stmt = stmt.where(kind.window_start >= start)
    if end is not None:
        stmt = stmt.where(kind.window_start < end)
    stmt = stmt.order_by(kind.window_start.desc(), kind.id.desc()).offset(offset).limit(limit + 1)
    return list(session.scalars(stmt).all())


def drift_page(
    session: Session,
    model: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> list[DriftReportRow]:
    return report_page(session, DriftReportRow, model, start, end, limit, offset)


def performance_page(
    session: Session,
    model: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    offset: int,
) -> list[PerformanceReportRow]:
    return report_page(session, PerformanceReportRow, model, start, end, limit, offset)


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
