"""The FastAPI application: its dependencies, middleware, error handlers and routers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from retrain.policy import Decision
from service.api.auth import TokenCheck
from service.api.errors import install_handlers
from service.api.instrument import RequestMetrics
from service.api.limits import BodyLimit
from service.metrics import http_metrics


@dataclass(frozen=True)
class ApiDeps:
    """What the routes read and call; the runner builds it from the live service.

    ``models`` maps each configured model to whether its labels are joined;
    ``request_retrain(model, reason, key)`` is the policy's manual request, the
    same path as ``driftwatch retrain``; ``render_html(report_id)`` renders the
    stored report with Evidently; ``consumer_problem()`` says why the consumer is
    not ready, or None. ``cookie_secure`` marks the overview page's session cookie
    Secure even on plain HTTP (behind a TLS-terminating proxy).
    """

    sessions: sessionmaker[Session]
    models: Mapping[str, bool]
    tokens: TokenCheck
    request_retrain: Callable[[str, str, str | None], Decision]
    render_html: Callable[[int], str]
    consumer_problem: Callable[[], str | None]
    registry: CollectorRegistry
    clock: Callable[[], datetime]
    # Signs the overview page's session cookies (api.session_secret); sessions live in SQL.
    session_secret: str
    session_lifetime: float = 8 * 3600.0
    metrics_open: bool = True
    max_body_bytes: int = 65536
    cookie_secure: bool = False


def create_app(deps: ApiDeps) -> FastAPI:
    from service.api.routes_ops import ops_router
    from service.api.routes_read import read_router
    from service.api.routes_records import records_router
    from service.api.routes_retrain import retrain_router
    from service.api.routes_ui import ui_router
    from service.api.ui_session import Sessions

    app = FastAPI(
        title="driftwatch",
        version="1",
        description="Drift reports, performance, the model registry and retraining runs.",
    )
    install_handlers(app)
    routers = [
        ops_router(deps),
        read_router(deps),
        records_router(deps),
        retrain_router(deps),
        ui_router(
            deps,
            Sessions(
                deps.tokens, deps.sessions, deps.clock, deps.session_secret, deps.session_lifetime
            ),
        ),
    ]
    for router in routers:
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=deps.max_body_bytes)
    # Added last, so outermost: requests the body limit refuses are counted too. They never
    # reach the router, so their route is matched on the routes as the routers declare them.
    routes = [*app.router.routes, *(route for router in routers for route in router.routes)]
    app.add_middleware(RequestMetrics, routes=routes, metrics=http_metrics(deps.registry))
    return app
