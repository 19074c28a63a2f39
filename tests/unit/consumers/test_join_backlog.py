"""A backlog read by the label join (consumers/join.py), through IngestLoop.

Three hours wait in both topics; the other model's labels in the labels topic
make it ten times longer, so a poll reads predictions ten times further in event
time than labels. Were the stalled-labels rule (predictions expire two horizons
on, on their own watermark) applied while labels are still to read, the
predictions would expire before their on-time labels are read and those labels
end orphaned (134 of 1,080 joined); it waits until the labels topic is read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from kafka import TopicPartition
from sqlalchemy.orm import Session, sessionmaker

from db.session import make_engine, make_session_factory
from tests.harness.ingest import LABELS, TOPIC, TTL, FakeClock, JoinRig, T, label, pred

HOURS = 3
EVENTS = HOURS * 360  # one prediction every 10 s
FILLER = 10  # other-model labels per fraud label


@pytest.fixture
def clock() -> FakeClock:
    # Past the backlog's last event, so that nothing reads as from the future.
    return FakeClock(T + HOURS * 3600 + 600.0)


@pytest.fixture
def sql(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def _labels(delay: float) -> list[bytes]:
    out: list[bytes] = []
    for i in range(EVENTS):
        t = T + 10 * i + delay
        out += [label(t, f"other-{i}-{j}", 0, model="other") for j in range(FILLER)]
        out.append(label(t, f"e{i}", 1))
    return out


def _drain(r: JoinRig, what: int = 0) -> int:
    """Run the loop's iterations (poll, process, align, flush) until nothing is left;
    return the most rows waiting in SQL at once: unlabelled predictions, or with
    ``what=2`` parked labels (the order of :meth:`JoinRig.pending`)."""
    waiting = 0
    while batch := r.loop._poll(0):
        r.loop._process(batch)
        r.loop._align()
        assert r.loop._flush_with_retry(deadline=None) is True
        waiting = max(waiting, r.pending()[what])
    assert not r.consumer.paused  # nothing is held once both topics are read
    return waiting


def _aligned(r: JoinRig, backlog: int) -> JoinRig:
    """Polls of 50 records a partition (500 s of predictions) and a hold backlog."""
    r.consumer.max_records = 50
    r.loop.settings = replace(r.loop.settings, hold_backlog=backlog)
    return r


def _fraud_outcomes(r: JoinRig) -> dict[str, int]:
    out: dict[str, int] = {}
    for model, outcome, n in r.stats.of("labels"):
        if model == "fraud":
            out[outcome] = out.get(outcome, 0) + n
    return out


def test_predictions_read_far_ahead_of_their_labels_wait_for_them(sql: Any, clock: Any) -> None:
    r = _aligned(JoinRig(sql, clock), backlog=10**9)  # never held
    r.consumer.append(TopicPartition(TOPIC, 0), *(pred(T + 10 * i, f"e{i}") for i in range(EVENTS)))
    r.add_labels(0, *_labels(delay=TTL / 2))
    waiting = _drain(r)
    assert _fraud_outcomes(r) == {"joined": EVENTS}
    assert r.unlabeled() == 0
    predicted = sum(r.window(T + 60 * m)[0] for m in range(HOURS * 60))
    labeled = sum(r.window(T + 60 * m)[1] for m in range(HOURS * 60))
    assert predicted == labeled == EVENTS
    # They waited in SQL meanwhile: the price of a backlog, far more than a horizon.
    print(f"unheld: {waiting} unlabelled predictions waited at most")
    assert waiting > 5 * TTL / 10


def test_predictions_held_back_for_their_labels_wait_in_kafka(sql: Any, clock: Any) -> None:
    r = _aligned(JoinRig(sql, clock), backlog=100)
    r.consumer.append(TopicPartition(TOPIC, 0), *(pred(T + 10 * i, f"e{i}") for i in range(EVENTS)))
    r.add_labels(0, *_labels(delay=TTL / 2))
    waiting = _drain(r)
    assert _fraud_outcomes(r) == {"joined": EVENTS}
    assert r.unlabeled() == 0
    # Held a horizon ahead of their labels: SQL holds the horizon, the labels' delay and
    # one poll of predictions (500 s), not the backlog.
    print(f"held: {waiting} unlabelled predictions waited at most")
    assert waiting <= (TTL + TTL / 2 + 500) / 10 + 1
    held = [p for p in r.consumer.paused_at_poll if TopicPartition(TOPIC, 0) in p]
    assert held  # the premise: the backlog did make the loop hold the predictions


def test_a_few_labels_waiting_never_hold_the_predictions(sql: Any, clock: Any) -> None:
    # Labels stamped two horizons behind (a producer clock that lags), a few at a time:
    # the steady state, where holding would throttle the predictions for nothing.
    r = _aligned(JoinRig(sql, clock), backlog=100)
    for i in range(40):
        r.consumer.append(TopicPartition(TOPIC, 0), pred(T + 10 * i, f"e{i}"))
        r.add_labels(0, label(T + 10 * i - 2 * TTL, f"x{i}", 1))
        _drain(r)
    assert not any(r.consumer.paused_at_poll)


def test_labels_that_stop_do_not_keep_predictions_waiting(sql: Any, clock: Any) -> None:
    r = JoinRig(sql, clock)
    r.consumer.append(TopicPartition(TOPIC, 0), *(pred(T + 10 * i, f"e{i}") for i in range(EVENTS)))
    # Labels for the first ten minutes only, then none: the labels topic is at its end.
    r.add_labels(0, *(label(T + 10 * i + 5, f"e{i}", 1) for i in range(60)))
    _drain(r)
    assert _fraud_outcomes(r) == {"joined": 60}
    # The stalled-labels rule still bounds what waits: the unlabelled predictions
    # more than two horizons before the last one expired.
    assert r.unlabeled() == (EVENTS - 1 - int(2 * TTL / 10)) - 60


def test_a_held_partition_is_released_after_an_empty_poll(sql: Any, clock: Any) -> None:
    r = _aligned(JoinRig(sql, clock), backlog=100)
    predictions = TopicPartition(TOPIC, 0)
    r.consumer.append(predictions, *(pred(T + 10 * i, f"e{i}") for i in range(EVENTS)))
    r.add_labels(0, *_labels(delay=TTL / 2))
    while predictions not in r.consumer.paused:  # read until the loop holds them back
        batch = r.loop._poll(0)
        assert batch
        r.loop._process(batch)
        r.loop._align()
    # The labels are read without a decision in between (as _wait reads during a
    # database outage): what releases the predictions is the next poll, an empty one.
    while batch := r.loop._poll(0):
        assert predictions not in batch
        r.loop._process(batch)
    assert r.loop._flush_with_retry(deadline=None) is True
    assert predictions in r.consumer.paused  # the flush's resume leaves it held
    stop = threading.Event()
    polls = r.consumer.poll

    def until_empty(timeout_ms: int = 0) -> dict[TopicPartition, list[Any]]:
        batch = polls(timeout_ms)
        if not batch:
            stop.set()
        return batch

    r.consumer.poll = until_empty  # type: ignore[method-assign]
    r.loop.run(stop)
    assert predictions not in r.consumer.paused


def _predictions_behind_filler() -> list[bytes]:
    """Fraud's predictions, each behind ten messages of a model this replica does not know
    (dead letters: they take a poll's room as another model's predictions would)."""
    out: list[bytes] = []
    for i in range(EVENTS):
        out += [b'{"model": "other", "event_id": "x%d-%d"}' % (i, j) for j in range(FILLER)]
        out.append(pred(T + 10 * i, f"e{i}"))
    return out


@pytest.mark.parametrize("backlog", [10**9, 100], ids=["unheld", "held"])
def test_labels_read_far_ahead_of_their_predictions_wait_in_kafka_when_held(
    sql: Any, clock: Any, backlog: int
) -> None:
    """The other way round: a predictions topic ten times longer than its labels (a
    predictions backlog), so a poll reads labels ten times further in event time, and
    each waits in ``pending_labels`` for its prediction."""
    r = _aligned(JoinRig(sql, clock), backlog=backlog)
    r.consumer.append(TopicPartition(TOPIC, 0), *_predictions_behind_filler())
    r.add_labels(0, *(label(T + 10 * i + TTL / 2, f"e{i}", 1) for i in range(EVENTS)))
    parked = _drain(r, what=2)
    outcomes = _fraud_outcomes(r)
    early = outcomes.pop("early", 0)  # parked first: each counts as joined too
    assert outcomes == {"joined": EVENTS}
    assert r.unlabeled() == 0
    print(f"hold backlog {backlog}: {parked} labels parked at most, {early} early")
    held = [p for p in r.consumer.paused_at_poll if TopicPartition(LABELS, 0) in p]
    if backlog == 100:
        # A horizon ahead of their predictions, the labels' delay and one poll of labels.
        assert held  # the premise: the backlog did make the loop hold the labels
        assert parked <= (TTL + TTL / 2 + 500) / 10 + 1
    else:
        assert not held
        assert parked > 5 * TTL / 10
