"""``Idempotency-Key`` on the write routes: the first answer to a key is stored (table
``idempotency_keys``, unique per scope and key) and replayed to every repeat with the
same request; the same key with a different request is a 422 naming the header.

A request is told apart by its fingerprint: the sha256 of what the route hashes (its
target and body). Two concurrent first requests both run; the second to store its
answer gets the first one's back (:meth:`db.idempotency.IdempotencyRepository.remember`),
so both answer alike, and the route's own uniqueness (one run, one active rollout per
model) keeps the effect single.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import JSONResponse

from db.idempotency import IdempotencyRepository, StoredResponse
from db.session import transaction
from service.api.deps import ApiDeps
from service.api.errors import ApiError

HEADER = "Idempotency-Key"

KeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="repeats with the same key and body get the first answer; one effect",
    ),
]


class KeyProblem(ApiError):
    """422 naming the header, as request validation does."""

    status = 422

    def __init__(self, problem: str) -> None:
        super().__init__(
            f"{HEADER} {problem}",
            problems=[{"location": f"header.{HEADER}", "problem": problem}],
        )


def one_key(request: Request, key: KeyHeader = None) -> str | None:
    """The request's key. Given twice, which one counts is up to each proxy and
    framework on the way, so the request is refused rather than stored under one."""
    if key is not None and len(request.headers.getlist(HEADER)) > 1:
        raise KeyProblem("was given more than once")
    return key


IdempotencyKey = Annotated[str | None, Depends(one_key)]


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def answered(
    deps: ApiDeps,
    scope: str,
    key: str | None,
    request: str,
    answer: Callable[[], StoredResponse],
) -> JSONResponse:
    """``answer()`` once per ``key`` within ``scope`` (every time without a key);
    ``request`` is the request's :func:`fingerprint`."""
    if key is not None:
        with transaction(deps.sessions) as s:
            stored = IdempotencyRepository(s).get(scope, key)
        if stored is not None:
            return replay(stored, request)
    first = answer()
    if key is None:
        return JSONResponse(json.loads(first.body), status_code=first.status)
    with transaction(deps.sessions) as s:
        kept = IdempotencyRepository(s).remember(
            scope, key, StoredResponse(request, first.status, first.body), deps.clock()
        )
    return replay(kept, request)


def replay(stored: StoredResponse, request: str) -> JSONResponse:
    if stored.fingerprint and stored.fingerprint != request:
        raise KeyProblem("was used before for a different request")
    return JSONResponse(json.loads(stored.body), status_code=stored.status)
