"""The overview page for people (``GET /``) and its sign-in, sign-out and retrain forms.

These routes answer HTML, are left out of the OpenAPI document, and answer
every refusal as an HTML page with its status and a message. The page needs a
token with the ``read`` scope, presented once through the sign-in form (or as
``?token=`` on ``/``, which is then dropped from the address by a redirect) and
kept as a signed session cookie (see ``service.api.ui_session``); failed sign-ins are
throttled per client address (``service.api.throttle``). The retrain
form needs the ``write`` scope and the session's CSRF token, and asks the
policy exactly as ``POST /v1/models/{model}/retrain`` does.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from db.session import transaction
from service.api import ui_page
from service.api.auth import Token, client_address
from service.api.deps import ApiDeps, Deps, UiSessions
from service.api.errors import NotFound
from service.api.routes_retrain import request_run
from service.api.throttle import TooManyAttempts
from service.api.ui_session import COOKIE, Sessions
from service.config.api import Scope

TEMPLATES = Environment(
    loader=PackageLoader("service.api", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
)
# Each model's section, in order.
PANELS = ("_drift.html", "_performance.html", "_registry.html", "_runs.html", "_rollout.html")
FORM = "application/x-www-form-urlencoded"
MAX_REASON = 500


class FormError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def page(template: str, code: int = 200, **context: object) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=code)


def problem(code: int, heading: str, message: str) -> HTMLResponse:
    return page("message.html", code, status=code, heading=heading, message=message)


def login_page(code: int = 200, message: str | None = None) -> HTMLResponse:
    return page("login.html", code, message=message)


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form; FormError (4xx) for anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != FORM:
        raise FormError(415, f"expected a form ({FORM}), got {kind or 'no content type'}")
    try:
        text = (await request.body()).decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=10)
    except UnicodeDecodeError:
        raise FormError(400, "the form is not UTF-8") from None
    except ValueError as exc:
        raise FormError(400, f"the form cannot be read: {exc}") from exc
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise FormError(400, f"the form field {name!r} is given twice")
        fields[name] = value
    return fields


def signed_in(sessions: Sessions, request: Request) -> tuple[Token, str] | None:
    """The session's token and cookie, or None when there is no valid session."""
    cookie = request.cookies.get(COOKIE)
    token = sessions.read(cookie)
    return None if token is None or cookie is None else (token, cookie)


def start_session(deps: ApiDeps, sessions: Sessions, request: Request, presented: str) -> Response:
    """Exchange a presented token for the session cookie, then show the overview."""
    try:
        token = deps.tokens.attempt(client_address(request), presented)
    except TooManyAttempts as exc:
        page = login_page(429, f"Too many failed sign-ins; retry after {exc.retry_after} s.")
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    if token is None:
        return login_page(401, "The token is not known.")
    if Scope.READ not in token.scopes:
        return login_page(403, f"The token {token.name!r} lacks the read scope.")
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        sessions.issue(token),
        max_age=sessions.lifetime,
        path="/",
        httponly=True,
        samesite="strict",
        secure=deps.cookie_secure or request.url.scheme == "https",
    )
    return response


async def retrain_form(deps: ApiDeps, sessions: Sessions, request: Request, model: str) -> Response:
    """The retrain button: a redirect to the page with the outcome, or a 4xx page."""
    session = await run_in_threadpool(signed_in, sessions, request)
    if session is None:
        return problem(401, "Sign in first", "The session is missing or has expired.")
    token, cookie = session
    try:
        fields = await read_form(request)
    except FormError as exc:
        return problem(exc.status, "Bad form", exc.message)
    if not sessions.csrf_ok(cookie, token, fields.get("csrf")):
        return problem(
            403, "Forbidden", "The form does not belong to this session; reload the page."
        )
    if Scope.WRITE not in token.scopes:
        return problem(403, "Forbidden", f"The token {token.name!r} lacks the write scope.")
    if model not in deps.models:
        return problem(404, "Not found", f"No model {model!r}; configured: {sorted(deps.models)}")
    reason = fields.get("reason", "").strip() or "requested on the overview page"
    if len(reason) > MAX_REASON:
        return problem(400, "Bad form", f"The reason is longer than {MAX_REASON} characters.")
    try:
        outcome = await run_in_threadpool(request_run, deps, model, reason, None)
    except NotFound as exc:
        return problem(404, "Not found", exc.message)
    if outcome.run_id is not None:
        query = {"flash": "started", "model": model, "run": str(outcome.run_id)}
    elif outcome.active_run_id is not None:
        query = {"flash": "active", "model": model, "run": str(outcome.active_run_id)}
    else:
        query = {"flash": "held", "model": model}
    return RedirectResponse(f"/?{urlencode(query)}", status_code=303)


router = APIRouter(include_in_schema=False)


@router.get("/")
def overview(request: Request, deps: Deps, sessions: UiSessions) -> Response:
    presented = request.query_params.get("token")
    if presented is not None:
        return start_session(deps, sessions, request, presented)
    session = signed_in(sessions, request)
    if session is None:
        return RedirectResponse("/login", status_code=303)
    token, cookie = session
    if Scope.READ not in token.scopes:
        return problem(403, "Forbidden", f"The token {token.name!r} lacks the read scope.")
    with transaction(deps.sessions) as s:
        steps = {
            name: tuple(step.weight for step in settings.steps)
            for name, settings in deps.rollout_settings.items()
        }
        models = ui_page.panels(s, deps.models, deps.clock(), steps)
    return page(
        "overview.html",
        models=models,
        panels=PANELS,
        user=token.name,
        can_write=Scope.WRITE in token.scopes,
        csrf=sessions.csrf(cookie, token),
        notice=ui_page.notice(request.query_params, deps.models),
    )


@router.get("/login")
def login_form(request: Request, sessions: UiSessions) -> Response:
    if signed_in(sessions, request) is not None:
        return RedirectResponse("/", status_code=303)
    return login_page()


@router.post("/login")
async def login(request: Request, deps: Deps, sessions: UiSessions) -> Response:
    try:
        fields = await read_form(request)
    except FormError as exc:
        return login_page(exc.status, exc.message)
    presented = fields.get("token", "").strip()
    if not presented:
        return login_page(400, "Enter a token.")
    return await run_in_threadpool(start_session, deps, sessions, request, presented)


@router.post("/logout")
async def logout(request: Request, sessions: UiSessions) -> Response:
    session = await run_in_threadpool(signed_in, sessions, request)
    if session is not None:
        try:
            fields = await read_form(request)
        except FormError as exc:
            return problem(exc.status, "Bad form", exc.message)
        if not sessions.csrf_ok(session[1], session[0], fields.get("csrf")):
            return problem(403, "Forbidden", "The form does not belong to this session.")
        # Revoked in SQL: the cookie, if kept or copied, is refused by every replica.
        await run_in_threadpool(sessions.revoke, session[1])
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/ui/models/{model}/retrain")
async def retrain(request: Request, deps: Deps, sessions: UiSessions, model: str) -> Response:
    return await retrain_form(deps, sessions, request, model)
