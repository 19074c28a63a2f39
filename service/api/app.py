"""The FastAPI application: its dependencies, middleware, error handlers and routers."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from service.api import (
    routes_ops,
    routes_read,
    routes_records,
    routes_retrain,
    routes_rollouts,
    routes_ui,
    routes_verdict,
)
from service.api.deps import ApiDeps
from service.api.errors import install_handlers
from service.api.instrument import RequestMetrics
from service.api.limits import BodyLimit
from service.api.ui_session import Sessions
from service.metrics import http_metrics


def create_app(deps: ApiDeps) -> FastAPI:
    """The application serving ``deps``: handlers find them on ``app.state`` per request
    (:mod:`service.api.deps`), so one set of route modules serves any number of apps."""
    app = FastAPI(
        title="driftwatch",
        version="1",
        description=(
            "Drift reports, performance, the model registry, retraining runs, canary "
            "rollouts and their verdicts."
        ),
    )
    app.state.deps = deps
    app.state.ui_sessions = Sessions(
        deps.tokens, deps.sessions, deps.clock, deps.session_secret, deps.session_lifetime
    )
    install_handlers(app)
    routers: list[APIRouter] = [
        routes_ops.router,
        routes_ops.metrics_router(deps.metrics_open),
        routes_read.router,
        routes_records.router,
        routes_records.pages,
        routes_retrain.router,
        routes_rollouts.read,
        routes_rollouts.write,
        routes_verdict.router,
        routes_verdict.flagger,
        routes_ui.router,
    ]
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=deps.max_body_bytes)
    # Added last, so outermost: requests the body limit refuses are counted too. They never
    # reach the router, so their route is matched on the routes as the routers declare them.
    routes = [*app.router.routes, *(route for router in routers for route in router.routes)]
    app.add_middleware(RequestMetrics, routes=routes, metrics=http_metrics(deps.registry))
    return app
