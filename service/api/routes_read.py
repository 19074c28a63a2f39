"""Read-only routes (the ``read`` scope) on models: the registry, drift and performance."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AfterValidator, AwareDatetime, BeforeValidator

from db.registry import RegistryRepository
from db.runs import RunRepository
from db.session import transaction
from service.api import views
from service.api.deps import ApiDeps, Deps, read_scope
from service.api.errors import NotFound
from service.api.schemas import (
    DriftPage,
    ErrorBody,
    ModelDetail,
    ModelPage,
    ModelSummary,
    PerformancePage,
)

ERRORS: dict[int | str, dict[str, object]] = {
    s: {"model": ErrorBody} for s in (401, 403, 404, 422, 429)
}
ModelName = Annotated[str, Path(min_length=1, max_length=200)]


def decimal_id(value: object) -> object:
    # Lax integer parsing reads "1.0", "+1", " 1" and "1_0" (rollout 10) as ids: each
    # resource gets one spelling, its decimal digits.
    if isinstance(value, str) and not _DECIMAL_ID.fullmatch(value):
        raise ValueError("an id is written in decimal digits, without sign or leading zero")
    return value


_DECIMAL_ID = re.compile(r"[1-9][0-9]{0,18}")
Id = Annotated[int, BeforeValidator(decimal_id), Path(ge=1, le=2**62)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10**9)]


def in_utc(value: datetime) -> datetime:
    # 0001-01-01T00:00+14:00 is a valid time whose UTC is before year 1: Python cannot
    # hold it, and the database would fail on it (a 500) instead of the request (422).
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range once converted to UTC") from None


def iso_text(value: object) -> object:
    # Lax parsing takes a bare number ("0.5") as Unix seconds: a client that meant
    # something else would get 1970 silently.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("a time is written as ISO 8601 with its offset, e.g. 2026-11-27T10:00Z")
    return value


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(iso_text), AfterValidator(in_utc)]
From = Annotated[UtcDatetime | None, Query(alias="from", description="window start >= this")]
To = Annotated[UtcDatetime | None, Query(alias="to", description="window start < this")]

router = APIRouter(
    prefix="/v1", dependencies=[Depends(read_scope)], responses=ERRORS, tags=["read"]
)


def next_offset(rows: int, limit: int, offset: int) -> int | None:
    return offset + limit if rows > limit else None


def known(deps: ApiDeps, model: str) -> bool:
    """Whether the model's labels are joined; NotFound when it is not configured."""
    if model not in deps.models:
        raise NotFound(f"no model {model!r}; configured: {sorted(deps.models)}")
    return deps.models[model]


@router.get("/models", response_model=ModelPage)
def models(deps: Deps, limit: Limit = 50, offset: Offset = 0) -> ModelPage:
    names = sorted(deps.models)
    page = names[offset : offset + limit]
    with transaction(deps.sessions) as s:
        registry = RegistryRepository(s)
        items = []
        for name in page:
            champion = registry.production(name)
            items.append(
                ModelSummary(
                    name=name,
                    labels=deps.models[name],
                    champion=None if champion is None else views.version(champion),
                )
            )
    more = offset + limit if len(names) > offset + limit else None
    return ModelPage(items=items, limit=limit, offset=offset, next_offset=more)


@router.get("/models/{model}", response_model=ModelDetail)
def model(deps: Deps, model: ModelName) -> ModelDetail:
    """Champion, candidates, the latest verdicts and the active run."""
    labels = known(deps, model)
    with transaction(deps.sessions) as s:
        champion = RegistryRepository(s).production(model)
        drift = views.latest_drift(s, model)
        perf = views.latest_performance(s, model) if labels else None
        active = RunRepository(s).active(model)
        return ModelDetail(
            name=model,
            labels=labels,
            champion=None if champion is None else views.version(champion),
            candidates=[views.version(v) for v in views.candidates(s, model)],
            latest_drift=None if drift is None else views.drift(drift),
            latest_performance=None if perf is None else views.performance(perf),
            active_run=views.run(active[0]) if active else None,
        )


@router.get("/models/{model}/drift", response_model=DriftPage)
def drift(
    deps: Deps,
    model: ModelName,
    start: From = None,
    end: To = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> DriftPage:
    """Drift reports of windows starting in [from, to), newest first."""
    known(deps, model)
    with transaction(deps.sessions) as s:
        rows = views.drift_page(s, model, start, end, limit, offset)
        more = next_offset(len(rows), limit, offset)
        items = [views.drift(r) for r in rows[:limit]]
    return DriftPage(items=items, limit=limit, offset=offset, next_offset=more)


@router.get("/models/{model}/performance", response_model=PerformancePage)
def performance(
    deps: Deps,
    model: ModelName,
    start: From = None,
    end: To = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PerformancePage:
    """Performance reports of windows starting in [from, to), newest first."""
    known(deps, model)
    with transaction(deps.sessions) as s:
        rows = views.performance_page(s, model, start, end, limit, offset)
        more = next_offset(len(rows), limit, offset)
        items = [views.performance(r) for r in rows[:limit]]
    return PerformancePage(items=items, limit=limit, offset=offset, next_offset=more)
