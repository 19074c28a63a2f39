"""``POST /v1/models/{model}/retrain`` (the ``write`` scope): a manual retraining request.

It goes through the trigger policy's manual request, as ``driftwatch retrain``
does. With an ``Idempotency-Key`` the first answer is stored and replayed to every
repeat (:mod:`service.api.idempotency`); the key also names the policy's manual
cause, whose unique decision row keeps two concurrent repeats from starting two runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse

from db.idempotency import StoredResponse
from db.runs import RunRepository
from db.session import transaction
from retrain.errors import RunRefused
from service.api.deps import ApiDeps, Deps, write_scope
from service.api.errors import NotFound, error_body
from service.api.idempotency import IdempotencyKey, answered, fingerprint
from service.api.schemas import ErrorBody, RetrainAccepted, RetrainRequest

router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(write_scope)],
    responses={s: {"model": ErrorBody} for s in (401, 403, 404, 409, 413, 422, 429)},
    tags=["write"],
)


@router.post("/models/{model}/retrain", status_code=202, response_model=RetrainAccepted)
def retrain(
    deps: Deps,
    model: Annotated[str, Path(min_length=1, max_length=200)],
    key: IdempotencyKey = None,
    body: RetrainRequest | None = None,
) -> JSONResponse:
    """Start a retraining run now: 202 with its id, or 409 with the active run's id."""
    if model not in deps.models:
        raise NotFound(f"no model {model!r}; configured: {sorted(deps.models)}")
    reason = (body or RetrainRequest()).reason
    return answered(
        deps,
        f"retrain:{model}",
        key,
        fingerprint(model, reason),
        lambda: _request(deps, model, reason, key),
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """A manual request's answer: the run it started, or why none started (and the
    active run, if that is the reason)."""

    run_id: int | None
    reason: str
    active_run_id: int | None


def request_run(deps: ApiDeps, model: str, reason: str, cause_key: str | None) -> Outcome:
    """The policy's manual request, shared by this route and the overview page's form;
    NotFound when the model has no retrain settings."""
    try:
        decision = deps.retrain_policy.request(model, reason, cause_key)
    except RunRefused as exc:
        raise NotFound(str(exc)) from exc
    if decision.fired and decision.run_id is not None:
        return Outcome(decision.run_id, decision.reason, None)
    with transaction(deps.sessions) as s:
        active = [r.id for r in RunRepository(s).active(model)]
    return Outcome(None, decision.reason, active[0] if active else None)


def _request(deps: ApiDeps, model: str, reason: str, key: str | None) -> StoredResponse:
    # The policy's cause key is bounded in length, the header is not as tightly: hash it.
    cause_key = None if key is None else "api-" + hashlib.sha256(key.encode()).hexdigest()
    outcome = request_run(deps, model, reason, cause_key)
    if outcome.run_id is not None:
        body = RetrainAccepted(run_id=outcome.run_id, model=model, reason=reason)
        return StoredResponse("", 202, body.model_dump_json())
    conflict = error_body(
        f"{model}: {outcome.reason}; nothing started", active_run_id=outcome.active_run_id
    )
    return StoredResponse("", 409, json.dumps(conflict))
