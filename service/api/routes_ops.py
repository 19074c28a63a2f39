"""``/healthz``, ``/readyz`` and ``/metrics``: open to probes and (configurably) scrapers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from db.session import database_problem
from service.api.deps import Deps, read_scope
from service.api.schemas import ErrorBody, Status

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Status)
def healthz() -> Status:
    """The process is alive and answering."""
    return Status(status="ok")


@router.get("/readyz", response_model=Status, responses={503: {"model": Status}})
def readyz(deps: Deps) -> Response:
    """The database answers and the consumer has its partitions and is not stalled."""
    problems: list[str] = []
    database = database_problem(deps.sessions)
    if database is not None:
        problems.append(database)
    consumer = deps.consumer_problem()
    if consumer is not None:
        problems.append(consumer)
    body = Status(status="not ready" if problems else "ready", problems=problems)
    return JSONResponse(body.model_dump(), status_code=503 if problems else 200)


def metrics(deps: Deps) -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(deps.registry), media_type=CONTENT_TYPE_LATEST)


def metrics_router(open_to_all: bool) -> APIRouter:
    """``/metrics``, open (``api.metrics_open``) or behind the ``read`` scope. Chosen when
    the application is built, so that the OpenAPI document says which."""
    metrics_only = APIRouter(tags=["operations"])
    metrics_only.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        dependencies=[] if open_to_all else [Depends(read_scope)],
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
            401: {"model": ErrorBody},
            403: {"model": ErrorBody},
            429: {"model": ErrorBody},
        },
    )
    return metrics_only
