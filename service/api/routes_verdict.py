"""The canary verdict for the controllers teams already run (the ``verdict`` scope):
the analysis of a rollout's current step, or of any stable/canary version pair of a
model, folded into pass / fail / inconclusive (:mod:`retrain.rollout.verdict`).

- ``GET /v1/rollouts/{id}/verdict`` and ``GET /v1/models/{model}/verdict`` answer
  200 with the verdict in the body, for an Argo Rollouts ``web`` metric: its
  ``jsonPath: "{$.verdict}"`` reads ``pass``, ``fail`` or ``inconclusive``, and the
  AnalysisTemplate's ``successCondition`` / ``failureCondition`` tell the three apart
  (neither met is Argo's Inconclusive). A non-2xx answer is an Argo *Error*, so only
  a request that cannot be answered (unknown model, bad parameter, no token) gets one.
- ``POST /v1/flagger/verdict`` takes Flagger's webhook payload: 200 on pass (Flagger
  advances), 412 with the same body on fail *and* on inconclusive (Flagger counts any
  answer above 202 as a failed check; inconclusive must not advance). Flagger's
  webhooks cannot send headers, so the token may ride in ``metadata.token``.

The pair's defaults: ``stable`` the model's production version, ``canary`` the
canary of its active rollout, else its newest candidate; ``until`` now; ``since`` one
hour before ``until`` (or a duration such as ``30m`` before it, or a time);
``weight`` (the canary's percent of traffic) unset leaves the sample-ratio check out.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.orm import Session

from db.registry import RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.session import transaction
from drift.canary import Check
from retrain.rollout.settings import RolloutSettings
from retrain.rollout.span import Analyse, Span
from retrain.rollout.verdict import Verdict, of_rollout, of_span
from service.api.auth import authorize, client_address
from service.api.deps import ApiDeps, Credentials, Deps, verdict_scope
from service.api.errors import ApiError, Conflict, NotFound
from service.api.routes_read import ERRORS, Id, ModelName, UtcDatetime, in_utc
from service.api.schemas import ErrorBody
from service.api.schemas_rollouts import FlaggerPayload, VerdictBody, VerdictCheck
from service.config.api import Scope
from service.durations import parse_duration
from service.rollout_records import versions_of

DEFAULT_SINCE = "1h"
# What Flagger's webhook metadata may name (all strings, as Flagger sends them).
FLAGGER_KEYS = frozenset({"model", "rollout", "stable", "canary", "since", "weight", "token"})

CONFLICT: dict[int | str, dict[str, object]] = {409: {"model": ErrorBody}}
router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(verdict_scope)],
    responses={**ERRORS, **CONFLICT},
    tags=["verdict"],
)
flagger = APIRouter(
    prefix="/v1",
    responses={
        **ERRORS,
        **CONFLICT,
        412: {"model": VerdictBody, "description": "fail or inconclusive"},
    },
    tags=["verdict"],
)


class Invalid(ApiError):
    """422 naming where the bad value was, as request validation does."""

    status = 422

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(
            f"{location}: {problem}", problems=[{"location": location, "problem": problem}]
        )


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else value


def _check(c: Check) -> VerdictCheck:
    return VerdictCheck(
        name=c.name,
        outcome=c.outcome.value,
        value=_finite(c.value),
        threshold=c.threshold,
        n_canary=c.n_canary,
        n_stable=c.n_stable,
        reason=c.reason,
        details={k: _finite(v) for k, v in c.details.items()},
    )


def _body(verdict: Verdict, model: str, stable: str | None, canary: str | None) -> VerdictBody:
    span = verdict.span
    return VerdictBody(
        verdict=verdict.outcome.value,
        reason=verdict.reason,
        model=model,
        stable=stable if span is None else span.stable,
        canary=canary if span is None else span.canary,
        canary_percent=None if span is None else span.canary_percent,
        since=None if span is None else span.start,
        until=None if span is None else span.end,
        checks=[_check(c) for c in verdict.checks],
    )


def _analysis(deps: ApiDeps, model: str) -> tuple[RolloutSettings, Analyse]:
    settings = deps.rollout_settings.get(model)
    if settings is None or deps.analyse is None:
        raise Conflict(f"model {model} has no rollout settings in the config")
    return settings, deps.analyse


def rollout_verdict(deps: ApiDeps, rollout_id: int) -> VerdictBody:
    with transaction(deps.sessions) as s:
        rollout = RolloutRepository(s).get(rollout_id)
        if rollout is None:
            raise NotFound(f"no rollout {rollout_id}")
        settings, analyse = _analysis(deps, rollout.model)
        labels = deps.models.get(rollout.model, False)
        verdict = of_rollout(s, rollout, settings, analyse, labels=labels, now=deps.clock())
        names = versions_of(s, [rollout])[rollout.id]
        body = _body(verdict, rollout.model, names.stable, names.canary)
    body.rollout_id = rollout_id
    return body


@router.get("/rollouts/{rollout_id}/verdict", response_model=VerdictBody)
def rollout(deps: Deps, rollout_id: Id) -> VerdictBody:
    """The verdict of a rollout: how it ended, or its current step's analysis so far."""
    return rollout_verdict(deps, rollout_id)


def _since(text: str, until: datetime, location: str) -> datetime:
    """A time (ISO 8601 with its offset) or a duration before ``until``."""
    try:
        seconds: float | None = parse_duration(text)
    except ValueError:
        seconds = None
    if seconds is not None:
        try:
            return until - timedelta(seconds=seconds)
        except OverflowError:
            raise Invalid(location, f"{text} before {until.isoformat()} is out of range") from None
    try:
        since = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(
            location, "expected a time with its offset or a duration such as 30m"
        ) from None
    if since.tzinfo is None:
        raise Invalid(location, "a time needs its UTC offset")
    try:
        return in_utc(since)
    except ValueError as exc:
        raise Invalid(location, f"{text} is {exc}") from None


def _defaults(session: Session, model: str) -> tuple[str | None, str | None]:
    """The model's production version and its rollout's canary (else newest candidate)."""
    registry = RegistryRepository(session)
    production = registry.production(model)
    active = RolloutRepository(session).active(model)
    if active:
        canary = versions_of(session, active)[active[0].id].canary
    else:
        waiting = {str(Stage.CANARY), str(Stage.CANDIDATE)}
        newest = [v.version for v in registry.versions(model) if v.stage in waiting]
        canary = newest[-1] if newest else None
    return (None if production is None else production.version), canary


def pair_verdict(
    deps: ApiDeps,
    model: str,
    names: tuple[str | None, str | None],
    window: tuple[str, datetime | None],
    weight: int | None,
    where: str,
) -> VerdictBody:
    """The verdict of ``model``'s stable/canary ``names`` over ``window`` (since, until);
    ``where`` prefixes the location of a bad value (``query`` or ``body.metadata``)."""
    if model not in deps.models:
        raise NotFound(f"no model {model!r}; configured: {sorted(deps.models)}")
    settings, analyse = _analysis(deps, model)
    until = window[1] or deps.clock()
    since = _since(window[0], until, f"{where}.since")
    if since >= until:
        raise Invalid(f"{where}.since", f"{since.isoformat()} is not before {until.isoformat()}")
    with transaction(deps.sessions) as s:
        default_stable, default_canary = _defaults(s, model)
        stable, canary = names[0] or default_stable, names[1] or default_canary
        if stable is None:
            raise NotFound(f"model {model} has no production version; name the stable one")
        if canary is None:
            raise NotFound(f"model {model} has no canary or candidate; name the canary one")
        if stable == canary:
            raise Invalid(f"{where}.canary", f"the canary is the stable version ({stable!r})")
        span = Span(model, stable, canary, since, until, weight or 0, settings.task)
        verdict = of_span(
            s, span, settings, analyse, labels=deps.models[model], check_split=weight is not None
        )
    body = _body(verdict, model, stable, canary)
    body.canary_percent = weight
    return body


Version = Annotated[str | None, Query(min_length=1, max_length=200)]


@router.get("/models/{model}/verdict", response_model=VerdictBody)
def pair(
    deps: Deps,
    model: ModelName,
    stable: Version = None,
    canary: Version = None,
    since: Annotated[str, Query(min_length=1, max_length=64)] = DEFAULT_SINCE,
    until: Annotated[UtcDatetime | None, Query()] = None,
    weight: Annotated[int | None, Query(ge=0, le=100)] = None,
) -> VerdictBody:
    """The verdict of two versions of a model over [since, until) (module docstring
    for the defaults)."""
    return pair_verdict(deps, model, (stable, canary), (since, until), weight, "query")


def _flagger_verdict(deps: ApiDeps, meta: dict[str, str]) -> VerdictBody:
    unknown = sorted(set(meta) - FLAGGER_KEYS)
    if unknown:
        raise Invalid("body.metadata", f"unknown keys {unknown}; known: {sorted(FLAGGER_KEYS)}")
    too_long = sorted(k for k in ("model", "stable", "canary") if len(meta.get(k, "")) > 200)
    if too_long:
        raise Invalid(f"body.metadata.{too_long[0]}", "longer than 200 characters")
    if "rollout" in meta:
        given = meta["rollout"]
        digits = given.isascii() and given.isdigit() and len(given) <= 19
        if not (digits and 1 <= int(given) <= 2**62):
            raise Invalid("body.metadata.rollout", "expected a rollout id")
        return rollout_verdict(deps, int(given))
    if "model" not in meta:
        raise Invalid("body.metadata.model", "required (or metadata.rollout)")
    weight = meta.get("weight")
    if weight is not None and not (
        weight.isascii() and weight.isdigit() and len(weight) <= 3 and int(weight) <= 100
    ):
        raise Invalid("body.metadata.weight", "expected a percent from 0 to 100")
    return pair_verdict(
        deps,
        meta["model"],
        (meta.get("stable"), meta.get("canary")),
        (meta.get("since", DEFAULT_SINCE), None),
        None if weight is None else int(weight),
        "body.metadata",
    )


@flagger.post("/flagger/verdict", response_model=VerdictBody)
def flagger_webhook(
    request: Request, deps: Deps, credentials: Credentials, payload: FlaggerPayload
) -> JSONResponse:
    """A Flagger webhook (pre-rollout, rollout, confirm-promotion): 200 on pass, 412 on
    fail or inconclusive. ``metadata``: ``model`` (or ``rollout``, an id), optional
    ``stable``, ``canary``, ``since``, ``weight``, and ``token`` when the bearer
    token cannot be sent as a header."""
    token = payload.metadata.get("token")
    if credentials is None and token:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    authorize(deps.tokens, credentials, Scope.VERDICT, client_address(request))
    meta = {k: v for k, v in payload.metadata.items() if k != "token"}
    body = _flagger_verdict(deps, meta)
    status = 200 if body.verdict == "pass" else 412
    return JSONResponse(body.model_dump(mode="json"), status_code=status)
