"""What every alert channel shares: the alert it is given, the outcome it returns.

A channel turns one :class:`Alert` into one HTTP request and reports an
:class:`Outcome`; retries, backoff, rate limits and deduplication belong to the
worker (:mod:`service.alerts.worker`), so each channel module stays a payload
builder plus one POST.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Action(StrEnum):
    """``trigger``/``resolve`` open and close a condition; ``notify`` is a one-off event
    (a run's outcome) that nothing resolves, so it is neither deduplicated nor re-sent."""

    TRIGGER = "trigger"
    RESOLVE = "resolve"
    NOTIFY = "notify"


class Severity(StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


def dedup_key(model: str, kind: str, details: Mapping[str, Any]) -> str:
    """``<model>/<kind>``, or ``<model>/<kind>/<scope>`` for a condition that several
    holders raise on their own (each replica's consumer: its group and partitions)."""
    scope = details.get("scope")
    return f"{model}/{kind}/{scope}" if isinstance(scope, str) and scope else f"{model}/{kind}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One outbox event as a channel sees it. ``dedup_key`` is ``<model>/<kind>``
    (plus the payload's ``scope`` when it names one): the trigger and the resolve of
    one condition share it."""

    event_id: int
    model: str
    kind: str
    action: Action
    severity: Severity
    message: str
    created_at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> str:
        return dedup_key(self.model, self.kind, self.details)

    @property
    def summary(self) -> str:
        prefix = "RESOLVED: " if self.action is Action.RESOLVE else ""
        return f"{prefix}[driftwatch] {self.message}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went. ``retriable`` failures (429, 5xx, timeouts, connection
    errors) are tried again; ``retry_after`` is the receiver's Retry-After, in seconds."""

    ok: bool
    retriable: bool = False
    error: str | None = None
    retry_after: float | None = None

    @classmethod
    def delivered(cls) -> Outcome:
        return cls(ok=True)


class Channel(Protocol):
    """One destination. ``send`` says how a delivery went rather than raising; the worker
    still contains anything it raises (or a hang: it runs under a total deadline) to the
    one delivery."""

    name: str

    async def send(self, alert: Alert, now: datetime) -> Outcome: ...

    async def close(self) -> None: ...


def bounded_key(key: str, limit: int) -> str:
    """``key`` if it fits a receiver's ``limit``, else a prefix and a digest of the whole,
    so two long keys that share a prefix stay two (a model_version comes from the stream
    and may be long)."""
    if len(key) <= limit:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{key[: limit - len(digest) - 1]}#{digest}"
