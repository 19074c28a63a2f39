"""Canary rollouts over HTTP: list and show them (``read``), start one and pause, resume,
promote or abort it (``write``, with ``Idempotency-Key``), as ``driftwatch rollouts``
does; the records are the CLI's (:mod:`service.rollout_records`).

A write records its transition only: it commits through the service's rollout driver
with its history row and alert, in the transaction holding the rollout's row, and the
router call the new phase needs is left to the leader's next ``rollout`` tick (the
driver's ``act=False``). The API answers on every replica, the router is driven by the
leader alone, so router calls stay in the order of the leader's ticks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from db.idempotency import StoredResponse
from db.registry import RegistryRepository
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import transaction
from retrain.errors import RolloutRefused
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.lifecycle import Phase
from service.api.deps import ApiDeps, Deps, read_scope, write_scope
from service.api.errors import Conflict, NotFound, error_body
from service.api.idempotency import IdempotencyKey, answered, fingerprint
from service.api.routes_read import ERRORS, Id, Limit, ModelName, Offset, next_offset
from service.api.schemas import ErrorBody
from service.api.schemas_rollouts import (
    RolloutActionRequest,
    RolloutChange,
    RolloutDetail,
    RolloutPage,
    RolloutStartRequest,
    RolloutSummary,
)
from service.rollout_records import rollout_json, show_json, versions_of

read = APIRouter(prefix="/v1", dependencies=[Depends(read_scope)], responses=ERRORS, tags=["read"])
write = APIRouter(
    prefix="/v1",
    dependencies=[Depends(write_scope)],
    responses={s: {"model": ErrorBody} for s in (401, 403, 404, 409, 413, 422, 429)},
    tags=["write"],
)

LEADER_ACTS = "recorded; the leader's next rollout tick makes the router call it needs"


def finite(record: dict[str, Any]) -> dict[str, Any]:
    """A check record whose infinite details are None: JSON has no infinity."""
    details = record["details"]
    record["details"] = {k: v if v is None or abs(v) != float("inf") else None
                         for k, v in details.items()}  # fmt: skip
    return record


@read.get("/rollouts", response_model=RolloutPage)
def rollouts(
    deps: Deps,
    model: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    active: Annotated[bool | None, Query(description="only active (or finished) ones")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> RolloutPage:
    """Rollouts newest first; a model since removed from the config keeps its rollouts."""
    with transaction(deps.sessions) as s:
        rows = RolloutRepository(s).page(model, active, limit + 1, offset)
        versions = versions_of(s, rows)
        items = [RolloutSummary(**rollout_json(r, versions[r.id])) for r in rows[:limit]]
    return RolloutPage(
        items=items, limit=limit, offset=offset, next_offset=next_offset(len(rows), limit, offset)
    )


@read.get("/rollouts/{rollout_id}", response_model=RolloutDetail)
def rollout(deps: Deps, rollout_id: Id) -> RolloutDetail:
    """Its phase, step and weight, the weight history, every phase entered and every
    analysis by step (each check's value, threshold, sample sizes, outcome, reason)."""
    with transaction(deps.sessions) as s:
        repository = RolloutRepository(s)
        r = repository.get(rollout_id)
        if r is None:
            raise NotFound(f"no rollout {rollout_id}")
        settings = deps.rollout_settings.get(r.model)
        weights = None if settings is None else [step.weight for step in settings.steps]
        record = show_json(
            r, versions_of(s, [r])[r.id], repository.history(r.id), repository.analyses(r.id),
            weights,
        )  # fmt: skip
    for step in record["analyses"]:
        step["checks"] = [finite(c) for c in step["checks"]]
    return RolloutDetail(**record)


def _driver(deps: ApiDeps) -> RolloutDriver:
    if deps.rollouts is None:
        raise Conflict(
            "this API runs without the service's rollout driver (it is not served by "
            "driftwatch run), so nothing would carry a rollout out"
        )
    return deps.rollouts


def _change(rollout_id: int, model: str, phase: Phase, status: int = 202) -> StoredResponse:
    body = RolloutChange(rollout_id=rollout_id, model=model, phase=phase, message=LEADER_ACTS)
    return StoredResponse("", status, body.model_dump_json())


def _refused(exc: Exception, status: int = 409) -> StoredResponse:
    return StoredResponse("", status, json.dumps(error_body(str(exc))))


@write.post("/models/{model}/rollouts", status_code=202, response_model=RolloutChange)
def start(
    deps: Deps, model: ModelName, body: RolloutStartRequest, key: IdempotencyKey = None
) -> JSONResponse:
    """Start the rollout of an accepted run's candidate (``run_id`` or ``candidate``,
    its version): 202 with the new rollout (``pending``), 404 for an unknown model,
    run or version, 409 when it cannot start (no
    candidate awaiting a rollout, no production version, an active rollout)."""
    if model not in deps.models:
        raise NotFound(f"no model {model!r}; configured: {sorted(deps.models)}")
    driver = _driver(deps)

    def answer() -> StoredResponse:
        with transaction(deps.sessions) as s:
            run_id = _run_of(s, model, body)
        if isinstance(run_id, StoredResponse):
            return run_id
        try:
            rollout_id = driver.start(model, run_id)
        except RolloutRefused as exc:
            return _refused(exc)
        return _change(rollout_id, model, Phase.PENDING)

    request = fingerprint(model, body.run_id, body.candidate)
    return answered(deps, f"rollout-start:{model}", key, request, answer)


def _run_of(session: Session, model: str, body: RolloutStartRequest) -> int | StoredResponse:
    """The run the request names, or the refusal to answer with."""
    if body.candidate is not None:
        version = RegistryRepository(session).get(model, body.candidate)
        if version is None:
            return _refused(NotFound(f"model {model} has no version {body.candidate!r}"), 404)
        if version.run_id is None:
            return _refused(Conflict(f"version {body.candidate!r} of {model} has no run"))
        return version.run_id
    run = None if body.run_id is None else RunRepository(session).get(body.run_id)
    if run is None or run.model != model:
        return _refused(NotFound(f"model {model} has no run {body.run_id}"), 404)
    return run.id


Act = Callable[[RolloutDriver, int, str], Phase]

# Each operator action: how it is recorded, and its default reason.
ACTIONS: dict[str, tuple[Act, str]] = {
    "pause": (lambda d, i, why: d.pause(i, why), "paused through the API"),
    "resume": (lambda d, i, _why: d.resume(i, act=False), ""),
    "promote": (lambda d, i, why: d.promote(i, why, act=False), "promoted through the API"),
    "abort": (lambda d, i, why: d.abort(i, why, act=False), "aborted through the API"),
}


def _act(
    deps: Deps, action: str, rollout_id: int, body: RolloutActionRequest | None, key: str | None
) -> JSONResponse:
    driver = _driver(deps)
    act, default = ACTIONS[action]
    reason = (body.reason if body is not None else None) or default

    def answer() -> StoredResponse:
        with transaction(deps.sessions) as s:
            found = RolloutRepository(s).get(rollout_id)
            model = None if found is None else found.model
        if model is None:
            return _refused(NotFound(f"no rollout {rollout_id}"), 404)
        try:
            phase = act(driver, rollout_id, reason)
        except RolloutRefused as exc:
            return _refused(exc)
        return _change(rollout_id, model, phase)

    request = fingerprint(action, rollout_id, reason)
    return answered(deps, f"rollout-{action}:{rollout_id}", key, request, answer)


Action = RolloutActionRequest | None


@write.post("/rollouts/{rollout_id}/pause", status_code=202, response_model=RolloutChange)
def pause(
    deps: Deps, rollout_id: Id, body: Action = None, key: IdempotencyKey = None
) -> JSONResponse:
    """Pause an active rollout where it is (409 when it is paused or finished)."""
    return _act(deps, "pause", rollout_id, body, key)


@write.post("/rollouts/{rollout_id}/resume", status_code=202, response_model=RolloutChange)
def resume(deps: Deps, rollout_id: Id, key: IdempotencyKey = None) -> JSONResponse:
    """Resume a paused rollout where it paused (409 when it is not paused)."""
    return _act(deps, "resume", rollout_id, None, key)


@write.post("/rollouts/{rollout_id}/promote", status_code=202, response_model=RolloutChange)
def promote(
    deps: Deps, rollout_id: Id, body: Action = None, key: IdempotencyKey = None
) -> JSONResponse:
    """Promote a progressing or paused rollout now, skipping its remaining steps (409
    otherwise, and for one paused while rolling back)."""
    return _act(deps, "promote", rollout_id, body, key)


@write.post("/rollouts/{rollout_id}/abort", status_code=202, response_model=RolloutChange)
def abort(
    deps: Deps, rollout_id: Id, body: Action = None, key: IdempotencyKey = None
) -> JSONResponse:
    """Roll an active rollout back (409 when it is rolling back or finished)."""
    return _act(deps, "abort", rollout_id, body, key)
