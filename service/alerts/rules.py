"""The pure rules of delivery: how long to wait, when to give up, who gets what, how fast.

Backoff is a small function here rather than a retry library's: a retry library
(tenacity, stamina) drives a loop inside one call and sleeps between attempts,
while an outbox delivery's schedule is a ``next_attempt_at`` stored in SQL and
resumed by whichever tick (or replica, after a restart) comes next. What it needs
is one pure "delay after attempt n" that a test can pin, which is four lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from db.outbox import AlertEventRow
from service.alerts.base import Severity
from service.config.alerts import AlertsConfig

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


@dataclass(frozen=True)
class Limits:
    """One channel's bounds: the whole of one request, and requests in flight at once."""

    deadline: float = 15.0
    concurrency: int = 4


@dataclass(frozen=True)
class DeliverySettings:
    max_attempts: int = 8
    backoff: float = 5.0
    max_backoff: float = 3600.0
    max_retry_after: float = 3600.0
    dead_after: float = 86400.0
    batch: int = 100
    resend: Mapping[str, float] = field(default_factory=dict)
    rates: Mapping[str, tuple[int, float]] = field(default_factory=dict)
    limits: Mapping[str, Limits] = field(default_factory=dict)

    def delay(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before attempt ``attempts + 1``: doubling, capped, never before the
        receiver's Retry-After, which is itself obeyed only up to ``max_retry_after``."""
        backoff = min(self.max_backoff, self.backoff * 2.0 ** min(attempts - 1, 64))
        asked = min(max(retry_after or 0.0, 0.0), self.max_retry_after)
        return max(backoff, asked)

    def next_attempt(self, created: datetime, now: datetime, wait: float) -> datetime | None:
        """When to try again, or None when the delivery has reached ``dead_after``. A wait
        that would pass that age is cut to it, so the last attempt still happens."""
        give_up = created + timedelta(seconds=self.dead_after)
        if now >= give_up:
            return None
        # In seconds first: now + any configured wait could pass datetime's range.
        return now + timedelta(seconds=min(wait, (give_up - now).total_seconds()))

    def limit(self, channel: str) -> Limits:
        return self.limits.get(channel, Limits())

    @property
    def claim_seconds(self) -> float:
        """How long a pass holds the deliveries it took: it starts sends for up to one
        deadline, each lasting at most another; then a margin for the bookkeeping."""
        longest = max((lim.deadline for lim in self.limits.values()), default=Limits().deadline)
        return 2 * longest + 30.0


class Router:
    """Which channels an alert goes to: the union of every matching route's."""

    def __init__(self, cfg: AlertsConfig) -> None:
        self._cfg = cfg

    def severity(self, event: AlertEventRow, payload: Mapping[str, object]) -> Severity:
        given = payload.get("severity")
        if isinstance(given, str) and given in Severity.__members__.values():
            return Severity(given)
        return Severity(self._cfg.severity_of(event.kind))

    def channels(self, model: str, kind: str, severity: Severity) -> list[str]:
        names: list[str] = []
        for route in self._cfg.routes:
            if route.models and model not in route.models:
                continue
            if route.kinds and kind not in route.kinds:
                continue
            if _RANK[severity] < _RANK[Severity(route.min_severity)]:
                continue
            names.extend(c for c in route.channels if c not in names)
        return names


class RateLimiter:
    """A token bucket per channel, on the injected clock."""

    def __init__(self, rates: Mapping[str, tuple[int, float]]) -> None:
        self._rates = rates
        self._state: dict[str, tuple[float, datetime]] = {}

    def allow(self, channel: str, now: datetime) -> bool:
        if channel not in self._rates:
            return True
        capacity, period = self._rates[channel]
        tokens, last = self._state.get(channel, (float(capacity), now))
        elapsed = max(0.0, (now - last).total_seconds())
        tokens = min(float(capacity), tokens + elapsed * capacity / period)
        if tokens < 1.0:
            self._state[channel] = (tokens, now)
            return False
        self._state[channel] = (tokens - 1.0, now)
        return True
