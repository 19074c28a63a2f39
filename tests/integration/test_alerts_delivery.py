"""Delivery that cannot wedge, against real local receivers (issue 17, points 1 and 7).

A slow receiver holds only its own channel; a request is cut at its total deadline
even when bytes keep trickling in; a resolve waits for its trigger; whatever a
receiver answers (any status, any Retry-After, any body) the pass completes and the
other channels' deliveries go out; a shutdown waits for the delivery in flight or
abandons it without counting an attempt; a second worker (a new leader) never sends
what the first has claimed. Every premise holds by construction: the receivers hold
a call until the test releases it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox, DeliveryRepository, DeliveryStatus
from db.session import transaction
from service.alerts import build_worker
from service.alerts.conditions import DATA_DRIFT, condition
from service.alerts.worker import OutboxWorker
from service.config.alerts import AlertsConfig
from tests.harness.receivers import Receiver, receiver
from tests.integration.test_alerts import T0, Clock, channel_config, drift, sessions

__all__ = ["sessions"]

WAIT = 60.0  # every wait's deadline: far beyond any healthy local round trip


@pytest.fixture
def pair() -> Iterator[tuple[Receiver, Receiver]]:
    """A slack receiver that will be slow and a healthy PagerDuty one."""
    with ExitStack() as stack:
        slow = stack.enter_context(receiver("slack"))
        healthy = stack.enter_context(receiver("pagerduty", secret="pd-secret"))
        yield slow, healthy


def worker(
    sessions: sessionmaker[Session],
    channels: dict[str, tuple[Receiver, dict[str, Any]]],
    clock: Clock,
    is_leader: Callable[[], bool] = lambda: True,
    **settings: Any,
) -> OutboxWorker:
    cfg = AlertsConfig.model_validate(
        {
            "channels": {
                name: channel_config(rx.kind, rx, **extra) for name, (rx, extra) in channels.items()
            },
            # The slow channel first: before the fix it was sent, and waited for, first.
            "routes": [{"channels": list(channels)}],
            "backoff": "10s",
            **settings,
        }
    )
    return build_worker(cfg, sessions, None, clock, is_leader)


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(work()), daemon=True)
    thread.start()
    return thread, result


def rows(sessions: sessionmaker[Session]) -> dict[str, tuple[str, int, str | None]]:
    with transaction(sessions) as s:
        return {
            f"{d.delivery.channel}/{d.delivery.action}": (
                d.delivery.status,
                d.delivery.attempts,
                d.delivery.last_error,
            )
            for d in DeliveryRepository(s).listing()
        }


def test_a_trickling_receiver_holds_only_its_own_channel(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver]
) -> None:
    slow, healthy = pair
    slow.trickle = 1
    clock = Clock()
    w = worker(sessions, {"slow": (slow, {"deadline": "10m"}), "ok": (healthy, {})}, clock)
    drift(sessions, True, "report-1", T0)
    thread, sent = in_thread(w.tick)
    assert slow.trickling.wait(WAIT), "the slow channel's request never started"
    # The healthy page arrives while the slow call is still held open by its receiver.
    assert healthy.wait_received(1, WAIT)
    with healthy.seen:
        assert healthy.seen.wait_for(lambda: len(healthy.accepted) == 1, WAIT)
    assert slow.trickling.is_set() and thread.is_alive()
    slow.release.set()
    thread.join(WAIT)
    w.close()
    assert sent == [2]
    assert {k: v[:2] for k, v in rows(sessions).items()} == {
        "slow/trigger": (DeliveryStatus.DELIVERED, 1),
        "ok/trigger": (DeliveryStatus.DELIVERED, 1),
    }


def test_a_trickle_is_cut_at_the_total_deadline_and_counted_as_a_failed_attempt(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver]
) -> None:
    slow, healthy = pair
    slow.trickle = 1
    clock = Clock()
    # A per-read timeout of a minute never fires on a byte a second: only the deadline can.
    channels = {"slow": (slow, {"deadline": "1s", "timeout": "1m"}), "ok": (healthy, {})}
    w = worker(sessions, channels, clock)
    drift(sessions, True, "report-1", T0)
    thread, sent = in_thread(w.tick)
    thread.join(WAIT)
    assert not thread.is_alive(), "the pass never ended: nothing bounds the whole request"
    assert slow.cut.wait(WAIT), "the sender never hung up on the trickle"
    w.close()
    assert sent == [1]
    found = rows(sessions)
    assert found["ok/trigger"][:2] == (DeliveryStatus.DELIVERED, 1)
    status, attempts, error = found["slow/trigger"]
    assert (status, attempts) == (DeliveryStatus.PENDING, 1)
    assert error is not None and "1 s deadline" in error


def test_a_resolve_is_never_delivered_before_its_trigger(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver]
) -> None:
    _, pd = pair
    pd.fail_next(1, 503, retry_after="600")
    clock = Clock()
    w = worker(sessions, {"pd": (pd, {})}, clock)
    drift(sessions, True, "report-1", T0)
    assert w.tick() == 0  # the trigger is to be retried in 600 s
    clock.advance(30)
    drift(sessions, False, "report-2", clock.now)
    assert w.tick() == 0  # the resolve is due, but waits behind its trigger
    assert len(pd.received) == 1
    clock.advance(600)
    assert w.tick() == 1
    assert w.tick() == 1
    w.close()
    actions = [r.json["event_action"] for r in pd.accepted]
    assert actions == ["trigger", "resolve"]
    assert pd.state["fraud/data_drift"] == "resolved"


@pytest.mark.parametrize("value", ["\u00b2", "9999999999999", "9" * 400])
def test_a_hostile_retry_after_neither_aborts_the_pass_nor_parks_the_delivery(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver], value: str
) -> None:
    hostile, healthy = pair
    hostile.fail_next(100, 503, retry_after=value)
    clock = Clock()
    w = worker(
        sessions,
        {"hostile": (hostile, {}), "ok": (healthy, {})},
        clock,
        max_attempts=3,
        max_retry_after="5m",
    )
    for i in range(4):
        with transaction(sessions) as s:
            AlertOutbox(s).add(f"run-{i}", "run_failed", "fraud", f"run {i} failed", clock.now)
        w.tick()
        # Every tick's new alert reaches the healthy channel, whatever the other answered.
        assert len(healthy.accepted) == i + 1
        clock.advance(300)  # the clamp: never parked longer than max_retry_after
    for _ in range(4):
        w.tick()
        clock.advance(300)
    w.close()
    with transaction(sessions) as s:
        hostile_rows = [
            d.delivery for d in DeliveryRepository(s).listing() if d.delivery.channel == "hostile"
        ]
    # Each was tried max_attempts times, then given up with its reason, never forever.
    assert [(d.status, d.attempts) for d in hostile_rows] == [(DeliveryStatus.DEAD, 3)] * 4
    assert all(
        (d.last_error or "").startswith("out of attempts (3): HTTP 503") for d in hostile_rows
    )


def test_a_clean_shutdown_waits_for_the_delivery_in_flight(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver]
) -> None:
    slow, _ = pair
    slow.trickle = 1
    w = worker(sessions, {"slow": (slow, {"deadline": "10m"})}, Clock())
    drift(sessions, True, "report-1", T0)
    ticking, _ = in_thread(w.tick)
    assert slow.trickling.wait(WAIT)
    closing, clean = in_thread(w.close)
    slow.release.set()
    closing.join(WAIT)
    ticking.join(WAIT)
    assert clean == [True]
    assert rows(sessions)["slow/trigger"][:2] == (DeliveryStatus.DELIVERED, 1)


def test_a_shutdown_past_its_grace_abandons_the_delivery_without_counting_it(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver]
) -> None:
    slow, _ = pair
    slow.trickle = 1
    w = worker(sessions, {"slow": (slow, {"deadline": "10m"})}, Clock())
    drift(sessions, True, "report-1", T0)
    ticking, _ = in_thread(w.tick)
    assert slow.trickling.wait(WAIT)
    assert w.close(grace=0.0) is False
    ticking.join(WAIT)
    assert slow.cut.wait(WAIT), "the abandoned request was left open"
    got = rows(sessions)
    assert got["slow/trigger"][:2] == (DeliveryStatus.PENDING, 0), got
    with transaction(sessions) as s:
        [due] = DeliveryRepository(s).listing()
        assert due.delivery.claimed_by is None  # released: due again right after a restart


def test_a_new_leader_does_not_send_what_the_old_one_has_in_flight(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver]
) -> None:
    slow, _ = pair
    slow.trickle = 1
    clock = Clock()
    leader = {"old": True}
    old = worker(sessions, {"s": (slow, {"deadline": "10m"})}, clock, lambda: leader["old"])
    new = worker(sessions, {"s": (slow, {"deadline": "10m"})}, clock, lambda: not leader["old"])
    drift(sessions, True, "report-1", T0)
    ticking, _ = in_thread(old.tick)
    assert slow.trickling.wait(WAIT)
    leader["old"] = False  # the handover, in the middle of the old leader's tick
    assert new.tick() == 0
    slow.release.set()
    ticking.join(WAIT)
    clock.advance(3600)
    assert new.tick() == 0
    old.close()
    new.close()
    assert len(slow.received) == 1
    assert rows(sessions)["s/trigger"][:2] == (DeliveryStatus.DELIVERED, 1)


def test_a_worker_that_lost_leadership_sends_nothing_and_releases_what_it_took(
    sessions: sessionmaker[Session], pair: tuple[Receiver, Receiver]
) -> None:
    _, pd = pair
    clock = Clock()
    old = worker(sessions, {"pd": (pd, {})}, clock, lambda: False)
    new = worker(sessions, {"pd": (pd, {})}, clock)
    with transaction(sessions) as s:
        condition(s, "fraud", DATA_DRIFT, True, "r1", "drift", T0, {})
    assert old.tick() == 0
    assert pd.received == []
    assert new.tick() == 1  # not held by the old worker's claim
    clock.advance(timedelta(hours=1).total_seconds())
    old.close()
    new.close()
    assert [r.json["event_action"] for r in pd.accepted] == ["trigger"]
