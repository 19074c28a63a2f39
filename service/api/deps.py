"""What the API's handlers read and call, and the FastAPI dependencies that hand it to them.

:func:`service.api.app.create_app` keeps one :class:`ApiDeps` on the application's
state; every handler declares what it needs (``deps: Deps``, a scope guard) and
FastAPI resolves it per request. Nothing here is a route, so the route modules
import this one and the application imports the route modules: never the other way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from retrain.policy import TriggerPolicy
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.settings import RolloutSettings
from retrain.rollout.span import Analyse
from service.api.auth import Token, TokenCheck, authorize, bearer, client_address
from service.api.errors import Forbidden, Unauthorized
from service.api.ui_session import COOKIE, Sessions
from service.config.api import Scope


@dataclass(frozen=True)
class ApiDeps:
    """What the routes read and call; :mod:`service.wiring` builds it from the live service.

    ``models`` maps each configured model to whether its labels are joined;
    ``retrain_policy`` is the trigger policy whose manual request
    (:meth:`retrain.policy.TriggerPolicy.request`) the retrain route and the overview
    page's form make, the same path as ``driftwatch retrain``; ``render_html(report_id)``
    renders the stored report with Evidently; ``consumer_problem()`` says why the
    consumer is not ready, or None. ``cookie_secure`` marks the overview page's session
    cookie Secure even on plain HTTP (behind a TLS-terminating proxy).

    ``rollouts`` is the service's rollout driver, through which the rollout routes
    record operator transitions (None: an API built without the service, whose write
    routes refuse); ``rollout_settings`` and ``analyse`` are
    each model's rollout settings (the verdict routes' analysis settings; the overview page
    reads the candidate's share per step off their step weights) and the canary analysis
    the verdict routes run.
    """

    sessions: sessionmaker[Session]
    models: Mapping[str, bool]
    tokens: TokenCheck
    retrain_policy: TriggerPolicy
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
    rollouts: RolloutDriver | None = None
    rollout_settings: Mapping[str, RolloutSettings] = field(default_factory=dict)
    analyse: Analyse | None = None


def current(request: Request) -> ApiDeps:
    """The dependencies of the application serving ``request``."""
    deps: ApiDeps = request.app.state.deps
    return deps


def ui_sessions(request: Request) -> Sessions:
    """The overview page's session signer (one per application, with its own secret)."""
    sessions: Sessions = request.app.state.ui_sessions
    return sessions


Deps = Annotated[ApiDeps, Depends(current)]
UiSessions = Annotated[Sessions, Depends(ui_sessions)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
session_cookie = APIKeyCookie(
    name=COOKIE,
    auto_error=False,
    description="the overview page's session cookie (set by signing in at /login)",
)
SessionCookie = Annotated[str | None, Depends(session_cookie)]


def read_scope(request: Request, credentials: Credentials, deps: Deps) -> Token:
    """Lets the request through with a token holding the ``read`` scope."""
    return authorize(deps.tokens, credentials, Scope.READ, client_address(request))


def write_scope(request: Request, credentials: Credentials, deps: Deps) -> Token:
    """Lets the request through with a token holding the ``write`` scope."""
    return authorize(deps.tokens, credentials, Scope.WRITE, client_address(request))


def verdict_scope(request: Request, credentials: Credentials, deps: Deps) -> Token:
    """Lets the request through with a token holding the ``verdict`` scope."""
    return authorize(deps.tokens, credentials, Scope.VERDICT, client_address(request))


def read_scope_or_session(
    request: Request,
    credentials: Credentials,
    cookie: SessionCookie,
    deps: Deps,
    sessions: UiSessions,
) -> Token:
    """Lets the request through with a token holding the ``read`` scope, or else with the
    overview page's session cookie whose token holds it: what a browser following one
    of the page's links presents. A bearer header, when given, is the one judged.

    Only GET routes that change nothing take it. The cookie is ``SameSite=strict``, so
    a page of another site cannot make a browser send it along.
    """
    if credentials is not None or cookie is None:
        if credentials is None:
            raise Unauthorized(
                "a bearer token (Authorization: Bearer <token>) or the overview page's "
                "session cookie (sign in at /login) is required"
            )
        return authorize(deps.tokens, credentials, Scope.READ, client_address(request))
    token = sessions.read(cookie)
    if token is None:
        raise Unauthorized("the session has expired or was signed out; sign in at /login")
    if Scope.READ not in token.scopes:
        raise Forbidden(f"the token {token.name!r} lacks the {Scope.READ} scope")
    return token
