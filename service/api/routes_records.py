"""Read-only routes (the ``read`` scope) on single records: drift reports and runs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from db.models import DriftReportRow
from db.reports import DriftReportRepository
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import transaction
from service.api import views
from service.api.deps import Deps, read_scope, read_scope_or_session
from service.api.errors import ApiError, NotFound
from service.api.routes_read import ERRORS, Id, Limit, Offset, known, next_offset
from service.api.schemas import (
    ErrorBody,
    GateBody,
    PhaseBody,
    ReportBody,
    RunDetail,
    RunPage,
)
from service.errors import RenderBusy, RenderError
from service.monitoring.rendering import ReportNotFound

router = APIRouter(
    prefix="/v1", dependencies=[Depends(read_scope)], responses=ERRORS, tags=["read"]
)
# Pages a browser opens from the overview page: a session cookie does instead of a token.
pages = APIRouter(
    prefix="/v1", dependencies=[Depends(read_scope_or_session)], responses=ERRORS, tags=["read"]
)
HTML: dict[str, object] = {"text/html": {"schema": {"type": "string"}}}


class Unrenderable(ApiError):
    status = 409


class RendererBusy(ApiError):
    status = 503


@router.get("/reports/{report_id}", response_model=ReportBody)
def report(deps: Deps, report_id: Id) -> ReportBody:
    with transaction(deps.sessions) as s:
        detail = DriftReportRepository(s).get(report_id)
        if detail is None:
            raise NotFound(f"no drift report with id {report_id}")
        summary = s.get(DriftReportRow, report_id)
        assert summary is not None
        return ReportBody(
            summary=views.drift(summary),
            reference_rows=detail.reference_rows,
            prediction_method=detail.prediction_method,
            prediction_score=detail.prediction_score,
            prediction_p_value=detail.prediction_p_value,
            features=[views.feature(f) for f in detail.features],
            html_available=bool(detail.sample),
        )


@pages.get(
    "/reports/{report_id}/html",
    # Errors stay JSON: an HTML response class would document them as text/html.
    response_model=None,
    responses={
        200: {"content": HTML},
        409: {"model": ErrorBody},
        503: {"model": ErrorBody},
    },
)
def report_html(deps: Deps, report_id: Id) -> HTMLResponse:
    """The report rendered by Evidently (takes seconds: it re-tests every column, in a
    worker process; 503 while that worker has as many requests as it takes; 409, with
    the reason, for a report that cannot be rendered, such as one whose window kept no
    row sample or whose stored sample does not decode)."""
    try:
        return HTMLResponse(deps.render_html(report_id))
    except ReportNotFound as exc:
        if "no drift report" in str(exc):
            raise NotFound(str(exc)) from exc
        raise Unrenderable(str(exc)) from exc
    except RenderBusy as exc:
        raise RendererBusy(str(exc)) from exc
    except RenderError as exc:
        raise Unrenderable(str(exc)) from exc


@router.get("/runs", response_model=RunPage)
def runs(
    deps: Deps,
    model: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> RunPage:
    """Retraining runs, newest first."""
    if model is not None:
        known(deps, model)
    with transaction(deps.sessions) as s:
        rows = views.run_page(s, model, limit, offset)
        more = next_offset(len(rows), limit, offset)
        items = [views.run(r) for r in rows[:limit]]
    return RunPage(
        items=items,
        limit=limit,
        offset=offset,
        next_offset=more,
    )


@router.get("/runs/{run_id}", response_model=RunDetail)
def run(deps: Deps, run_id: Id) -> RunDetail:
    """A run's data, phases and gates, its Jobs' last log lines, why it failed if it did,
    and the rollouts its candidate started."""
    with transaction(deps.sessions) as s:
        repo = RunRepository(s)
        row = repo.get(run_id)
        if row is None:
            raise NotFound(f"no run {run_id}")
        return RunDetail(
            run=views.run(row),
            data_from=row.data_from,
            data_to=row.data_to,
            data_uri=row.data_uri,
            data_rows=row.data_rows,
            change_onset=row.change_onset,
            data_note=row.data_note,
            champion_version_id=row.champion_version_id,
            candidate_version_id=row.candidate_version_id,
            train_log_tail=row.train_log_tail,
            validate_log_tail=row.validate_log_tail,
            rollout_ids=RolloutRepository(s).of_run(run_id),
            history=[
                PhaseBody(phase=p.phase, note=p.note, entered_at=p.entered_at)
                for p in repo.history(run_id)
            ],
            gates=[
                GateBody(
                    gate=g.gate,
                    metric=g.metric,
                    slice=g.slice,
                    champion_value=g.champion_value,
                    candidate_value=g.candidate_value,
                    threshold=g.threshold,
                    passed=g.passed,
                )
                for g in repo.gates(run_id)
            ],
        )
