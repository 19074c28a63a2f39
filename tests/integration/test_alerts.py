"""The alert outbox against real local HTTP receivers, one per channel, on SQLite and
PostgreSQL: each documented payload shape, delivered once, retried after 503s with
backoff on the injected clock, resolved when the condition clears."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from db.outbox import AlertOutbox, DeliveryRepository, DeliveryStatus
from db.session import make_engine, make_session_factory, transaction
from service.alerts import build_worker
from service.alerts.conditions import DATA_DRIFT, condition
from service.alerts.worker import DeliveryObserver, OutboxWorker
from service.config.alerts import AlertsConfig
from service.metric_feeds import AlertMetrics
from service.metrics import Metrics
from tests.harness.receivers import Receiver, receiver

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KINDS = ("slack", "pagerduty", "opsgenie", "alertmanager", "webhook")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    with ExitStack() as stack:
        yield {k: stack.enter_context(receiver(k, secret=f"{k}-secret")) for k in KINDS}


def channel_config(kind: str, rx: Receiver, **extra: Any) -> dict[str, Any]:
    url = rx.url + ("/v2/enqueue" if kind == "pagerduty" else "/hook" if kind == "slack" else "")
    cfg: dict[str, Any] = {"type": kind, "url": url, **extra}
    if kind in ("pagerduty", "opsgenie", "webhook"):
        cfg["secret"] = rx.secret
    return cfg


def make_worker(
    sessions: sessionmaker[Session],
    rxs: dict[str, Receiver],
    clock: Clock,
    observer: DeliveryObserver | None = None,
    **settings: Any,
) -> OutboxWorker:
    cfg = AlertsConfig.model_validate(
        {
            "channels": {k: channel_config(k, rx) for k, rx in rxs.items()},
            "routes": [{"channels": list(rxs)}],
            "backoff": "10s",
            **settings,
        }
    )
    return build_worker(cfg, sessions, observer, clock)


def drift(sessions: sessionmaker[Session], firing: bool, key: str, now: datetime) -> bool:
    with transaction(sessions) as s:
        return condition(
            s, "fraud", DATA_DRIFT, firing, key, "dataset drift in fraud/v1", now, {"report_id": 7}
        )


def statuses(sessions: sessionmaker[Session]) -> dict[str, tuple[str, int]]:
    with transaction(sessions) as s:
        return {
            f"{d.delivery.channel}/{d.delivery.action}": (d.delivery.status, d.delivery.attempts)
            for d in DeliveryRepository(s).listing()
        }


def test_a_drift_alert_reaches_every_channel_once_in_its_documented_shape(
    sessions: sessionmaker[Session], receivers: dict[str, Receiver]
) -> None:
    clock = Clock()
    worker = make_worker(sessions, receivers, clock)
    assert drift(sessions, True, "report-1", T0)
    assert worker.tick() == 5
    clock.advance(30)  # within Alertmanager's re-send interval
    assert worker.tick() == 0
    worker.close()
    for rx in receivers.values():
        assert len(rx.accepted) == 1, rx.kind
        assert len(rx.received) == 1, rx.kind
    pd = receivers["pagerduty"].accepted[0].json
    assert pd["event_action"] == "trigger" and pd["dedup_key"] == "fraud/data_drift"
    assert pd["payload"]["severity"] == "warning" and pd["payload"]["source"] == "driftwatch/fraud"
    og = receivers["opsgenie"].accepted[0]
    assert og.path == "/v2/alerts" and og.json["alias"] == "fraud/data_drift"
    assert og.json["priority"] == "P3"
    am = receivers["alertmanager"].accepted[0].json
    assert am[0]["labels"]["alertname"] == "driftwatch_data_drift"
    assert datetime.fromisoformat(am[0]["endsAt"]) > T0
    assert "dataset drift in fraud/v1" in receivers["slack"].accepted[0].json["text"]
    hook = receivers["webhook"].accepted[0].json
    assert hook["action"] == "trigger" and hook["details"] == {"report_id": 7}
    assert set(statuses(sessions).values()) == {(DeliveryStatus.DELIVERED, 1)}


def test_a_trigger_while_firing_is_deduplicated_and_a_clear_resolves_everywhere(
    sessions: sessionmaker[Session], receivers: dict[str, Receiver]
) -> None:
    clock = Clock()
    worker = make_worker(sessions, receivers, clock)
    drift(sessions, True, "report-1", T0)
    worker.tick()
    with transaction(sessions) as s:
        # A second trigger of the same <model>/<kind> (as a replayed writer would queue).
        AlertOutbox(s).add(
            "again", DATA_DRIFT, "fraud", "still drifting", T0, payload={"action": "trigger"}
        )
    clock.advance(30)
    assert worker.tick() == 0
    assert drift(sessions, False, "report-2", clock.now)
    clock.advance(1)
    assert worker.tick() == 5
    worker.close()
    for rx in receivers.values():
        assert len(rx.accepted) == 2, rx.kind
    resolve = receivers["pagerduty"].accepted[1].json
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == "fraud/data_drift"
    assert receivers["pagerduty"].state["fraud/data_drift"] == "resolved"
    close = receivers["opsgenie"].accepted[1]
    assert close.path == "/v2/alerts/fraud%2Fdata_drift/close"
    assert receivers["opsgenie"].state["fraud/data_drift"] == "closed"
    ends = receivers["alertmanager"].accepted[1].json[0]["endsAt"]
    assert datetime.fromisoformat(ends) == clock.now
    assert receivers["slack"].accepted[1].json["text"].startswith(":white_check_mark: RESOLVED")
    assert receivers["webhook"].state["fraud/data_drift"] == "resolve"


def test_503_three_times_is_retried_with_backoff_then_delivered_once(
    sessions: sessionmaker[Session], receivers: dict[str, Receiver]
) -> None:
    pd = {"pagerduty": receivers["pagerduty"]}
    pd["pagerduty"].fail_next(2, 503)
    pd["pagerduty"].fail_next(1, 503, retry_after="120")
    registry = Metrics(CollectorRegistry())
    clock = Clock()
    worker = make_worker(sessions, pd, clock, AlertMetrics(registry))
    drift(sessions, True, "report-1", T0)
    waits = []
    for _ in range(10):
        worker.tick()
        if pd["pagerduty"].accepted:
            break
        before = len(pd["pagerduty"].received)
        # Not due yet: one second before the retry nothing is sent.
        clock.advance(9)
        worker.tick()
        assert len(pd["pagerduty"].received) == before
        step = 1.0
        while len(pd["pagerduty"].received) == before:
            clock.advance(step)
            worker.tick()
        waits.append((clock.now - T0).total_seconds())
    worker.close()
    assert len(pd["pagerduty"].received) == 4
    assert len(pd["pagerduty"].accepted) == 1
    # 10 s, then doubled to 20 s, then the receiver's Retry-After of 120 s wins over 40 s.
    assert waits == [10.0, 30.0, 150.0]
    assert statuses(sessions) == {"pagerduty/trigger": (DeliveryStatus.DELIVERED, 4)}
    value = registry.registry.get_sample_value
    assert (
        value("driftwatch_alerts_failed_total", {"channel": "pagerduty", "retriable": "true"}) == 3
    )
    assert value("driftwatch_alerts_sent_total", {"channel": "pagerduty"}) == 1


def test_a_4xx_is_not_retried_and_attempts_run_out_into_the_dead_state(
    sessions: sessionmaker[Session], receivers: dict[str, Receiver]
) -> None:
    rxs = {"slack": receivers["slack"], "webhook": receivers["webhook"]}
    rxs["slack"].fail_next(1, 400)
    rxs["webhook"].fail_next(10, 500)
    registry = Metrics(CollectorRegistry())
    clock = Clock()
    worker = make_worker(
        sessions, rxs, clock, AlertMetrics(registry), max_attempts=3, max_backoff="15s"
    )
    drift(sessions, True, "report-1", T0)
    for _ in range(5):
        worker.tick()
        clock.advance(15)
    worker.close()
    assert len(rxs["slack"].received) == 1
    assert len(rxs["webhook"].received) == 3
    assert statuses(sessions) == {
        "slack/trigger": (DeliveryStatus.DEAD, 1),
        "webhook/trigger": (DeliveryStatus.DEAD, 3),
    }
    value = registry.registry.get_sample_value
    assert value("driftwatch_alerts_dead_total", {"channel": "slack"}) == 1
    assert value("driftwatch_alerts_dead_total", {"channel": "webhook"}) == 1
    assert (
        value("driftwatch_alert_outbox_deliveries", {"channel": "webhook", "status": "dead"}) == 1
    )


def test_rate_limit_holds_deliveries_without_spending_attempts(
    sessions: sessionmaker[Session], receivers: dict[str, Receiver]
) -> None:
    rx = {"webhook": receivers["webhook"]}
    clock = Clock()
    cfg = AlertsConfig.model_validate(
        {
            "channels": {"webhook": channel_config("webhook", rx["webhook"], rate_limit=2)},
            "routes": [{"channels": ["webhook"]}],
        }
    )
    worker = build_worker(cfg, sessions, None, clock)
    with transaction(sessions) as s:
        for i in range(3):
            AlertOutbox(s).add(f"run-{i}", "run_failed", f"m{i}", f"run {i} failed", T0)
    assert worker.tick() == 2
    assert worker.tick() == 0
    clock.advance(30)  # one token back at 2 per minute
    assert worker.tick() == 1
    worker.close()
    got = [r.json["model"] for r in rx["webhook"].accepted]
    # The first two go out side by side (a channel sends concurrently): their order is free.
    assert sorted(got[:2]) == ["m0", "m1"] and got[2:] == ["m2"], got
    assert {a for (a, _) in statuses(sessions).values()} == {DeliveryStatus.DELIVERED}
    assert all(n == 1 for (_, n) in statuses(sessions).values())


def test_alertmanager_is_re_sent_while_firing_and_not_after_resolve(
    sessions: sessionmaker[Session], receivers: dict[str, Receiver]
) -> None:
    rx = {"alertmanager": receivers["alertmanager"]}
    clock = Clock()
    worker = make_worker(sessions, rx, clock)
    drift(sessions, True, "report-1", T0)
    worker.tick()
    clock.advance(59)
    worker.tick()
    assert len(rx["alertmanager"].accepted) == 1
    clock.advance(1)
    worker.tick()
    assert len(rx["alertmanager"].accepted) == 2
    again = rx["alertmanager"].accepted[1].json[0]
    # Held for two re-send intervals, so one lost re-send does not end it.
    assert datetime.fromisoformat(again["endsAt"]) == clock.now + timedelta(seconds=120)
    drift(sessions, False, "report-2", clock.now)
    worker.tick()
    clock.advance(600)
    worker.tick()
    worker.close()
    posts = [json.loads(r.raw)[0]["endsAt"] for r in rx["alertmanager"].accepted]
    assert len(posts) == 3
    assert datetime.fromisoformat(posts[2]) == T0 + timedelta(seconds=60)


def test_run_outcomes_are_one_off_notices_never_skipped_nor_re_sent(
    sessions: sessionmaker[Session], receivers: dict[str, Receiver]
) -> None:
    rxs = {k: receivers[k] for k in ("pagerduty", "alertmanager", "webhook")}
    clock = Clock()
    worker = make_worker(sessions, rxs, clock)
    with transaction(sessions) as s:
        AlertOutbox(s).add("run-1-failed", "run_failed", "fraud", "run 1 failed", T0)
    worker.tick()
    clock.advance(600)
    with transaction(sessions) as s:
        AlertOutbox(s).add("run-2-failed", "run_failed", "fraud", "run 2 failed", clock.now)
    worker.tick()
    worker.close()
    for rx in rxs.values():
        assert len(rx.accepted) == 2, rx.kind
    pd = [r.json for r in rxs["pagerduty"].accepted]
    assert [e["event_action"] for e in pd] == ["trigger", "trigger"]
    assert pd[0]["payload"]["severity"] == "error"
    assert [r.json["action"] for r in rxs["webhook"].accepted] == ["notify", "notify"]


def test_two_replicas_stalls_are_two_alerts_each_resolved_on_its_own(
    sessions: sessionmaker[Session], receivers: dict[str, Receiver]
) -> None:
    from consumers.progress import ConsumerProgress, OwnedPartition
    from service.alerts.replica import CONSUMER_STALLED, ReplicaCondition
    from service.monitoring.stalls import StallDetector, StallWatch

    clock = Clock()
    seconds = [0.0]
    progress = {
        "a": ConsumerProgress(owned=(OwnedPartition("predictions", 0, 1, 2, 3),)),
        "b": ConsumerProgress(owned=(OwnedPartition("predictions", 1, 4, 4, 9),)),
    }
    watches = {
        name: StallWatch(
            lambda name=name: progress[name],  # type: ignore[misc]
            StallDetector(60.0, lambda: seconds[0]),
            ReplicaCondition(sessions, CONSUMER_STALLED, "dw", clock),
        )
        for name in progress
    }
    for seconds[0] in (0.0, 60.0):
        for w in watches.values():
            w.tick()
    worker = make_worker(sessions, receivers, clock)
    assert worker.tick() == 10  # one trigger per replica per channel: not deduplicated
    progress["a"] = ConsumerProgress(owned=(OwnedPartition("predictions", 0, 3, 3, 3),))
    seconds[0] = 70.0
    for w in watches.values():
        w.tick()
    clock.advance(5)
    assert worker.tick() == 5  # a's resolve only; b still stalls
    worker.close()
    pd = [(r.json["event_action"], r.json["dedup_key"]) for r in receivers["pagerduty"].accepted]
    assert sorted(pd) == [
        ("resolve", "_service/consumer_stalled/dw/predictions:0"),
        ("trigger", "_service/consumer_stalled/dw/predictions:0"),
        ("trigger", "_service/consumer_stalled/dw/predictions:1"),
    ]
    am = [r.json[0]["labels"] for r in receivers["alertmanager"].accepted]
    assert {labels["scope"] for labels in am} == {"dw/predictions:0", "dw/predictions:1"}
    assert watches["b"].problem() is not None and watches["a"].problem() is None
