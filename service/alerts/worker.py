"""The outbox worker: routes alert events to channels, then delivers with retries.

One :meth:`OutboxWorker.tick` (the ``alerts`` scheduler job) does three things,
each bookkeeping step in its own short transaction so no HTTP call holds a lock:

1. *route*: every new event becomes one delivery per channel its route names,
   deduplicated by ``<model>/<kind>`` (plus the payload's ``scope``) per channel:
   a trigger while the condition is already firing there, or a resolve when
   nothing fires, is ``skipped``;
2. *re-send*: Alertmanager forgets alerts whose ``endsAt`` passed, so firing ones
   are posted again every ``resend_interval``;
3. *deliver*: due deliveries are sent, oldest first, within each channel's rate
   limit. 429, 5xx and timeouts are retried with exponential backoff (at least
   the receiver's ``Retry-After``); another 4xx, or ``max_attempts`` failures,
   make the delivery ``dead``.

An HTTP call that succeeded but whose bookkeeping was lost (a SIGKILL in
between) is sent again after the restart: delivery is at least once, and the
receivers deduplicate by the ``dedup_key``/alias/labels the channels send.
Time comes from the injected ``clock``, backoff included, so tests step it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from db.outbox import (
    AlertEventRow,
    DeliveryRepository,
    DeliveryStatus,
    Due,
    event_action,
    event_payload,
)
from db.session import transaction
from service.alerts.base import Action, Alert, Channel, Outcome, Severity, dedup_key
from service.config.alerts import AlertsConfig

log = logging.getLogger(__name__)

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}


class DeliveryObserver(Protocol):
    """What the worker reports; :class:`service.metric_feeds.AlertMetrics` exports it."""

    def sent(self, channel: str) -> None: ...

    def failed(self, channel: str, retriable: bool) -> None: ...

    def dead(self, channel: str) -> None: ...

    def outbox(self, counts: Mapping[tuple[str, str], int]) -> None: ...


class NoObserver:
    def sent(self, channel: str) -> None:
        pass

    def failed(self, channel: str, retriable: bool) -> None:
        pass

    def dead(self, channel: str) -> None:
        pass

    def outbox(self, counts: Mapping[tuple[str, str], int]) -> None:
        pass


@dataclass(frozen=True)
class DeliverySettings:
    max_attempts: int = 8
    backoff: float = 5.0
    max_backoff: float = 3600.0
    batch: int = 100
    resend: Mapping[str, float] = field(default_factory=dict)
    rates: Mapping[str, tuple[int, float]] = field(default_factory=dict)

    def delay(self, attempts: int, retry_after: float | None) -> float:
        """Seconds before attempt ``attempts + 1``: doubling, capped, never before Retry-After."""
        backoff = min(self.max_backoff, self.backoff * 2.0 ** (attempts - 1))
        return max(backoff, retry_after or 0.0)


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


def to_alert(due: Due, action: Action, severity: Severity) -> Alert:
    event, payload = due.event, due.payload
    details = {k: v for k, v in payload.items() if k not in ("action", "severity")}
    return Alert(
        event_id=event.id,
        model=event.model,
        kind=event.kind,
        action=action,
        severity=severity,
        message=event.message,
        created_at=event.created_at,
        details=details,
    )


class OutboxWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel],
        router: Router,
        settings: DeliverySettings,
        clock: Callable[[], datetime],
        observer: DeliveryObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self._channels = channels
        self._router = router
        self._settings = settings
        self._clock = clock
        self._observer: DeliveryObserver = observer or NoObserver()
        self._limiter = RateLimiter(settings.rates)

    def tick(self) -> int:
        """Route, re-send and deliver what is due; returns the deliveries sent."""
        self.route()
        self.resend()
        sent = self.deliver()
        with transaction(self._sessions) as session:
            self._observer.outbox(DeliveryRepository(session).counts())
        return sent

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    def route(self) -> int:
        now = self._clock()
        with transaction(self._sessions) as session:
            repo = DeliveryRepository(session)
            events = repo.unrouted(self._settings.batch)
            for event in events:
                self._route_one(repo, event, now)
        return len(events)

    def _route_one(self, repo: DeliveryRepository, event: AlertEventRow, now: datetime) -> None:
        action = event_action(event)
        dedup = dedup_key(event.model, event.kind, event_payload(event))
        severity = self._router.severity(event, event_payload(event))
        for channel in self._router.channels(event.model, event.kind, severity):
            if channel not in self._channels:
                continue
            latest = repo.latest(channel, dedup)
            firing = latest is not None and latest.action == Action.TRIGGER
            if action == Action.TRIGGER and firing:
                repo.add(
                    event, channel, dedup, action, DeliveryStatus.SKIPPED, now, "already firing"
                )
            elif action == Action.RESOLVE and not firing:
                repo.add(event, channel, dedup, action, DeliveryStatus.SKIPPED, now, "not firing")
            else:
                repo.add(event, channel, dedup, action, DeliveryStatus.PENDING, now)
        repo.finish_event(event.id, now)

    def resend(self) -> int:
        now, count = self._clock(), 0
        for channel, interval in self._settings.resend.items():
            with transaction(self._sessions) as session:
                stale = DeliveryRepository(session).firing(
                    channel, now - timedelta(seconds=interval)
                )
                todo = [(d.delivery.id, self._alert(d)) for d in stale]
            for delivery_id, alert in todo:
                if not self._limiter.allow(channel, now):
                    break
                if self._channels[channel].send(alert, now).ok:
                    count += 1
                    with transaction(self._sessions) as session:
                        due = DeliveryRepository(session).get(delivery_id)
                        if due is not None:
                            due.delivery.sent_at = now
        return count

    def deliver(self) -> int:
        now, sent = self._clock(), 0
        with transaction(self._sessions) as session:
            due = DeliveryRepository(session).due(now, self._settings.batch)
            todo = [
                (d.delivery.id, d.delivery.channel, d.delivery.dedup_key, self._alert(d))
                for d in due
            ]
        blocked: set[tuple[str, str]] = set()
        for delivery_id, channel, dedup, alert in todo:
            # A resolve never overtakes its trigger on the same channel.
            if (channel, dedup) in blocked or not self._limiter.allow(channel, now):
                blocked.add((channel, dedup))
                continue
            outcome = self._channels[channel].send(alert, now)
            if not self._record(delivery_id, outcome, now):
                blocked.add((channel, dedup))
            else:
                sent += 1
        return sent

    def _alert(self, due: Due) -> Alert:
        severity = self._router.severity(due.event, due.payload)
        return to_alert(due, Action(due.delivery.action), severity)

    def _record(self, delivery_id: int, outcome: Outcome, now: datetime) -> bool:
        with transaction(self._sessions) as session:
            repo = DeliveryRepository(session)
            due = repo.get(delivery_id)
            if due is None or due.delivery.status != DeliveryStatus.PENDING:
                return outcome.ok
            row = due.delivery
            row.attempts += 1
            if outcome.ok:
                row.status, row.sent_at, row.last_error = DeliveryStatus.DELIVERED, now, None
                self._observer.sent(row.channel)
            elif outcome.retriable and row.attempts < self._settings.max_attempts:
                wait = self._settings.delay(row.attempts, outcome.retry_after)
                row.next_attempt_at = now + timedelta(seconds=wait)
                row.last_error = outcome.error
                self._observer.failed(row.channel, True)
                log.warning(
                    "alert delivery %d to %s failed (%s), retry in %.0f s",
                    delivery_id,
                    row.channel,
                    outcome.error,
                    wait,
                )
            else:
                row.status, row.last_error = DeliveryStatus.DEAD, outcome.error
                self._observer.failed(row.channel, outcome.retriable)
                self._observer.dead(row.channel)
                log.error(
                    "alert delivery %d to %s is dead after %d attempt(s): %s",
                    delivery_id,
                    row.channel,
                    row.attempts,
                    outcome.error,
                )
            repo.finish_event(row.event_id, now)
        return outcome.ok
