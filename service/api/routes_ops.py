"""``/healthz``, ``/readyz`` and ``/metrics``: open to probes and (configurably) scrapers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from db.session import database_problem
from service.api.app import ApiDeps
from service.api.auth import requires
from service.api.schemas import ErrorBody, Status
from service.config.api import Scope


def ops_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", response_model=Status)
    def healthz() -> Status:
        """The process is alive and answering."""
        return Status(status="ok")

    @router.get("/readyz", response_model=Status, responses={503: {"model": Status}})
    def readyz() -> Response:
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

    guard = [] if deps.metrics_open else [Depends(requires(deps.tokens, Scope.READ))]

    @router.get(
        "/metrics",
        dependencies=guard,
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
            401: {"model": ErrorBody},
            403: {"model": ErrorBody},
        },
    )
    def metrics() -> Response:
        """Prometheus metrics in the text exposition format."""
        return Response(generate_latest(deps.registry), media_type=CONTENT_TYPE_LATEST)

    return router
