"""The outbox worker: routes alert events to channels, then delivers with retries.

One :meth:`OutboxWorker.tick` (the ``alerts`` scheduler job) does three things,
each bookkeeping step in its own short transaction so no HTTP call holds a lock:

1. *route*: every new event becomes one delivery per channel its route names,
   deduplicated by ``<model>/<kind>`` (plus the payload's ``scope``) per channel:
   a trigger while the condition is already firing there, or a resolve when
   nothing fires, is ``skipped``;
2. *re-send*: Alertmanager forgets alerts whose ``endsAt`` passed, so firing ones
   are posted again every ``resend_interval``;
3. *deliver*: per channel, due deliveries are claimed (:mod:`db.outbox`), then sent
   concurrently under each channel's deadline and concurrency
   (:mod:`service.alerts.dispatch`), within its rate limit. 429, 5xx, timeouts and
   anything a channel raises are retried with exponential backoff (at least the
   receiver's ``Retry-After``, at most ``max_retry_after``); another 4xx,
   ``max_attempts`` failures, or failing past ``dead_after`` make the delivery
   ``dead`` with its reason. Each outcome is recorded on its own, so no delivery's
   failure (nor its bookkeeping's) aborts the pass.

An HTTP call that succeeded but whose bookkeeping was lost (a SIGKILL in
between) is sent again once its claim ends: delivery is at least once, and the
receivers deduplicate by the ``dedup_key``/alias/labels the channels send. A
send not started (shutdown, leadership lost, the pass's budget spent) or
cancelled by :meth:`OutboxWorker.close` is released without counting an attempt.
Time comes from the injected ``clock``, backoff included, so tests step it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from db.outbox import (
    AlertDeliveryRow,
    AlertEventRow,
    DeliveryRepository,
    DeliveryStatus,
    Due,
    event_action,
    event_payload,
)
from db.session import transaction
from service.alerts.base import Action, Alert, Channel, Outcome, Severity, dedup_key
from service.alerts.dispatch import Dispatcher, Sent
from service.alerts.rules import DeliverySettings, Limits, RateLimiter, Router

__all__ = ["DeliverySettings", "Limits", "OutboxWorker", "RateLimiter", "Router"]

log = logging.getLogger(__name__)


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
class _Claimed:
    id: int
    channel: str
    alert: Alert | None
    problem: str | None = None


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


def _owner() -> str:
    """Who holds a claim: this process, uniquely (host and pid alone repeat in containers)."""
    return f"{socket.gethostname()[:30]}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


class OutboxWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        channels: Mapping[str, Channel],
        router: Router,
        settings: DeliverySettings,
        clock: Callable[[], datetime],
        observer: DeliveryObserver | None = None,
        is_leader: Callable[[], bool] = lambda: True,
        secrets: Sequence[str] = (),
    ) -> None:
        self._sessions = sessions
        self._channels = channels
        self._router = router
        self._settings = settings
        self._clock = clock
        self._observer: DeliveryObserver = observer or NoObserver()
        self._limiter = RateLimiter(settings.rates)
        self._dispatch = Dispatcher(channels, settings.limit, is_leader, secrets)
        self.owner = _owner()
        self._state = threading.Lock()
        self._closing = False
        self._idle = threading.Event()
        self._idle.set()

    def tick(self) -> int:
        """Route, re-send and deliver what is due; returns the deliveries sent."""
        with self._state:
            if self._closing:
                return 0
            self._idle.clear()
        try:
            self.route()
            resends = self._submit_resends()
            sent = self.deliver()
            self._resent(resends)
            with transaction(self._sessions) as session:
                self._observer.outbox(DeliveryRepository(session).counts())
            return sent
        finally:
            self._idle.set()

    def close(self, grace: float | None = None) -> bool:
        """Let the pass in flight finish for up to ``grace`` seconds (the longest channel
        deadline by default), else abandon its sends (released, not counted as attempts);
        close the channels. True when nothing was abandoned."""
        if grace is None:
            grace = max((self._settings.limit(c).deadline for c in self._channels), default=1.0)
        with self._state:
            self._closing = True
        self._dispatch.stop()
        finished = self._idle.wait(grace)
        self._dispatch.close(0.0 if not finished else grace)
        if not finished:
            # The abandoned sends come back to the pass as None: it releases their claims.
            self._idle.wait(max(grace, 5.0))
            log.warning("alert deliveries in flight abandoned at shutdown, not counted")
        return finished

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
        """Re-send firing Alertmanager alerts now; the re-sends that succeeded."""
        return self._resent(self._submit_resends())

    def _submit_resends(self) -> dict[Sent, tuple[int, datetime]]:
        """Start the due re-sends; they run beside the pass's deliveries, so a slow
        Alertmanager never holds another channel's delivery back."""
        now = self._clock()
        futures: dict[Sent, tuple[int, datetime]] = {}
        for channel, interval in self._settings.resend.items():
            with transaction(self._sessions) as session:
                stale = DeliveryRepository(session).firing(
                    channel, now - timedelta(seconds=interval)
                )
                todo = [(d.delivery.id, self._alert(d)) for d in stale]
            budget = self._dispatch.budget()
            for delivery_id, alert in todo:
                if not self._limiter.allow(channel, now):
                    break
                futures[self._dispatch.submit(channel, alert, now, budget)] = (delivery_id, now)
        return futures

    def _resent(self, futures: dict[Sent, tuple[int, datetime]]) -> int:
        count = 0
        for future in concurrent.futures.as_completed(futures):
            outcome = future.result()  # None: not started, or abandoned at close
            if outcome is not None and outcome.ok:
                count += 1
                self._mark_resent(*futures[future])
        return count

    def _mark_resent(self, delivery_id: int, now: datetime) -> None:
        with transaction(self._sessions) as session:
            due = DeliveryRepository(session).get(delivery_id)
            if due is not None:
                due.delivery.sent_at = now

    def deliver(self) -> int:
        now = self._clock()
        until = now + timedelta(seconds=self._settings.claim_seconds)
        with transaction(self._sessions) as session:
            repo = DeliveryRepository(session)
            todo = [
                self._prepare(due)
                for channel in self._channels
                for due in repo.due(channel, now, self._settings.batch)
                if repo.claim(due.delivery.id, self.owner, now, until)
            ]
        return self._send_all(todo, now)

    def _prepare(self, due: Due) -> _Claimed:
        delivery = due.delivery
        try:
            return _Claimed(delivery.id, delivery.channel, self._alert(due))
        except (ValueError, TypeError, KeyError) as exc:
            return _Claimed(delivery.id, delivery.channel, None, f"unreadable event: {exc}")

    def _send_all(self, todo: list[_Claimed], now: datetime) -> int:
        budget = self._dispatch.budget()
        futures: dict[Sent, _Claimed] = {}
        sent = 0
        for item in todo:
            if item.alert is None:
                self._contained(item.id, Outcome(False, False, item.problem), now)
            elif self._limiter.allow(item.channel, now):
                futures[self._dispatch.submit(item.channel, item.alert, now, budget)] = item
            else:
                self._release(item.id)
        for future in concurrent.futures.as_completed(futures):
            item = futures[future]
            outcome = future.result()  # None: not started, or abandoned at close
            if outcome is None:
                self._release(item.id)
            elif self._contained(item.id, outcome, now):
                sent += 1
        return sent

    def _alert(self, due: Due) -> Alert:
        severity = self._router.severity(due.event, due.payload)
        return to_alert(due, Action(due.delivery.action), severity)

    def _release(self, delivery_id: int) -> None:
        try:
            with transaction(self._sessions) as session:
                DeliveryRepository(session).release(delivery_id, self.owner)
        except Exception:  # the claim then simply runs out
            log.exception("alert delivery %d: cannot release its claim", delivery_id)

    def _contained(self, delivery_id: int, outcome: Outcome, now: datetime) -> bool:
        """:meth:`_record`, with a failure of the bookkeeping kept to this delivery: its
        claim runs out and it is sent again (at least once)."""
        try:
            return self._record(delivery_id, outcome, now)
        except Exception:
            log.exception("alert delivery %d: cannot record its outcome", delivery_id)
            return False

    def _record(self, delivery_id: int, outcome: Outcome, now: datetime) -> bool:
        with transaction(self._sessions) as session:
            repo = DeliveryRepository(session)
            due = repo.get(delivery_id)
            if due is None or due.delivery.status != DeliveryStatus.PENDING:
                return outcome.ok
            row = due.delivery
            if row.claimed_by != self.owner:
                return False  # our claim ran out and another worker holds it now
            row.attempts += 1
            row.claimed_by, row.claimed_until = None, None
            if outcome.ok:
                row.status, row.sent_at, row.last_error = DeliveryStatus.DELIVERED, now, None
                self._observer.sent(row.channel)
            else:
                self._failed(row, outcome, now)
            repo.finish_event(row.event_id, now)
        return outcome.ok

    def _failed(self, row: AlertDeliveryRow, outcome: Outcome, now: datetime) -> None:
        settings = self._settings
        wait = settings.delay(row.attempts, outcome.retry_after)
        retry = None
        if outcome.retriable and row.attempts < settings.max_attempts:
            retry = settings.next_attempt(row.created_at, now, wait)
        self._observer.failed(row.channel, outcome.retriable)
        if retry is not None:
            row.next_attempt_at, row.last_error = retry, outcome.error
            log.warning(
                "alert delivery %d to %s failed (%s), retry at %s",
                row.id,
                row.channel,
                outcome.error,
                retry.isoformat(),
            )
            return
        if not outcome.retriable:
            why = "refused"
        elif row.attempts >= settings.max_attempts:
            why = f"out of attempts ({row.attempts})"
        else:
            why = f"still failing {settings.dead_after:g} s after it was queued (dead_after)"
        row.status, row.last_error = DeliveryStatus.DEAD, f"{why}: {outcome.error}"
        self._observer.dead(row.channel)
        log.error("alert delivery %d to %s is dead: %s", row.id, row.channel, row.last_error)
