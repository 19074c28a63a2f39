"""The label join, driven through IngestLoop over a fake two-topic consumer, on both databases.

Each case of the join's state machine asserts its counter and what SQL holds:
the performance aggregate of the prediction's window and the pending rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from kafka import TopicPartition
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from consumers.checkpoint import CheckpointStore
from consumers.join import JoinBatch
from db.errors import OffsetConflict
from db.join import PredictionRecord
from db.models import PendingLabel, PendingPrediction, PerformanceAggregate
from db.repositories import OffsetAdvance, OffsetFence
from db.session import make_engine, make_session_factory
from tests.harness.ingest import (
    GROUP,
    LABELS,
    SPEC,
    TOPIC,
    TTL,
    FakeClock,
    JoinRig,
    T,
    label,
    letters,
    pred,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T + 100.0)


@pytest.fixture
def sql(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()


def test_label_after_prediction_joins_into_the_predictions_window(sql: Any, clock: Any) -> None:
    r = JoinRig(sql, clock)
    r.step(preds=[pred(T + 5, "a"), pred(T + 25, "b", 0.75), pred(T + 65, "c")])
    assert r.pending() == (3, 0, 0)
    assert r.window()[:3] == (2, 0, 0)
    # Labels come minutes later: still joined to the predictions' windows.
    r.step(labels=[label(T + 300, "a", 0), label(T + 301, "b", 0), label(T + 302, "c", 1)])
    assert r.outcomes() == {"joined": 3}
    predicted, labeled, unlabeled, sketch = r.window()
    assert (predicted, labeled, unlabeled) == (2, 2, 0)
    assert sketch.confusion == {("0", "0"): 1, ("0", "1"): 1}
    assert sketch.scored == 2
    assert r.window(T + 60)[3].confusion == {("1", "0"): 1}
    assert r.pending() == (0, 3, 0)  # kept, labelled, to recognise duplicates


def test_label_before_prediction_is_parked_then_joined(sql: Any, clock: Any) -> None:
    r = JoinRig(sql, clock)
    r.step(labels=[label(T + 30, "a", 1)])
    assert r.outcomes() == {"early": 1}
    assert r.pending() == (0, 0, 1)
    r.step(preds=[pred(T + 10, "a", 0.9)])
    assert r.outcomes() == {"early": 1, "joined": 1}
    assert r.pending() == (0, 1, 0)
    predicted, labeled, _, sketch = r.window()
    assert (predicted, labeled) == (1, 1)
    assert sketch.confusion == {("1", "1"): 1}


def test_both_sides_in_one_flush_join_whatever_their_order(sql: Any, clock: Any) -> None:
    r = JoinRig(sql, clock)
    r.step(preds=[pred(T + 10, "a")], labels=[label(T + 5, "a", 0), label(T + 6, "b", 0)])
    r.step(preds=[pred(T + 11, "b")])
    assert r.outcomes() == {"joined": 2, "early": 1}
    assert r.window()[:2] == (2, 2)


def test_duplicate_labels_are_counted_once(sql: Any, clock: Any) -> None:
    r = JoinRig(sql, clock)
    # Two labels before the prediction: one is parked, the other is a duplicate.
    r.step(labels=[label(T + 20, "a", 1), label(T + 21, "a", 0)])
    assert r.outcomes() == {"early": 1, "duplicate": 1}
    r.step(preds=[pred(T + 5, "a", 0.9), pred(T + 6, "b")], labels=[label(T + 22, "b", 0)])
    r.step(labels=[label(T + 40, "b", 1), label(T + 41, "a", 1)])  # within the TTL
    assert r.outcomes() == {"early": 1, "duplicate": 3, "joined": 2}
    predicted, labeled, _, sketch = r.window()
    assert (predicted, labeled) == (2, 2)
    assert sketch.confusion == {("1", "1"): 1, ("0", "0"): 1}  # the first label of each


def test_labels_of_unknown_models_are_counted_and_invalid_ones_dead_lettered(
    sql: Any, clock: Any
) -> None:
    r = JoinRig(sql, clock)
    r.step(
        labels=[
            label(T + 1, "a", 1, model="nope"),
            b"{not json",
            json.dumps({"event_id": "x", "model": "fraud"}).encode(),
            label(clock.now + 7200, "f", 1),  # beyond the clock skew allowance
            label(T + 2, "b", 1),
        ]
    )
    assert r.stats.of("labels") == [("nope", "unknown_model", 1), ("fraud", "early", 1)]
    sent = letters(r.producer)
    assert [(d["topic"], d["offset"]) for d in sent] == [(LABELS, 1), (LABELS, 2), (LABELS, 3)]
    assert r.stats.of("invalid") == ["malformed", "schema", "timestamp"]
    assert r.pending() == (0, 0, 1)
    with sql() as s:
        stored = s.execute(select(PendingLabel.event_id, PendingLabel.actual)).all()
    assert stored == [("b", "1")]


def test_expired_prediction_is_counted_unlabeled_in_its_window(sql: Any, clock: Any) -> None:
    r = JoinRig(sql, clock)
    r.step(preds=[pred(T + 5, "a"), pred(T + 50, "b")])
    # The label watermark passes a's event time + TTL, not yet b's.
    r.step(labels=[label(T + 5 + TTL + 1, "other", 0)])
    assert r.unlabeled() == 1
    assert r.window()[:3] == (2, 0, 1)
    assert r.pending() == (1, 0, 1)
    r.step(labels=[label(T + 40, "b", 1)])  # a late label still joins b
    r.step(labels=[label(T + 50 + TTL + 1, "other2", 0)])
    assert r.unlabeled() == 1  # b was labelled: dropped silently
    assert r.window()[:3] == (2, 1, 1)
    assert r.pending() == (0, 0, 2)


def test_expired_label_is_an_orphan(sql: Any, clock: Any) -> None:
    r = JoinRig(sql, clock)
    r.step(labels=[label(T + 5, "gone", 1), label(T + 100, "later", 0)])
    # The prediction watermark passes the first label's time + TTL.
    r.step(preds=[pred(T + 5 + TTL + 1, "x")])
    assert r.outcomes() == {"early": 2, "orphaned": 1}
    assert r.pending() == (1, 0, 1)
    # A label arriving after its prediction expired is parked and orphaned in turn.
    r.step(labels=[label(T + 200, "x", 0)])
    assert r.outcomes() == {"early": 2, "orphaned": 1, "joined": 1}


def test_a_replayed_flush_joins_exactly_once(sql: Any, clock: Any) -> None:
    first = JoinRig(sql, clock)
    first.step(preds=[pred(T + 5, "a"), pred(T + 6, "b")], labels=[label(T + 7, "a", 0)])
    # Crash after reading more but before flushing it: a second process reads it again.
    first.consumer.append(TopicPartition(TOPIC, 0), pred(T + 8, "c"))
    first.add_labels(0, label(T + 9, "b", 1), label(T + 9, "c", 0))
    while batch := first.loop._poll(0):
        first.loop._process(batch)
    second = JoinRig(sql, clock)
    second.step(
        preds=[pred(T + 5, "a"), pred(T + 6, "b"), pred(T + 8, "c")],
        labels=[label(T + 7, "a", 0), label(T + 9, "b", 1), label(T + 9, "c", 0)],
    )
    predicted, labeled, _, sketch = second.window()
    assert (predicted, labeled) == (3, 3)
    assert sketch.confusion == {("0", "0"): 2, ("1", "0"): 1}
    assert second.outcomes() == {"joined": 2}
    assert set(second.consumer.seeks) == {
        (TopicPartition(TOPIC, 0), 2),
        (TopicPartition(LABELS, 0), 1),
    }


def test_a_fenced_flush_writes_no_join_state(sql: Any, clock: Any) -> None:
    """A replica that lost partition 0 of the predictions topic may not join on it."""
    store = CheckpointStore(sql, GROUP, clock.time)
    store.commit([OffsetAdvance(TOPIC, 0, None, 5, T + 5.0)], {})
    record = PredictionRecord(0, "fraud", "a", "v1", T, T + 1.0, "0", None, 0.1, T + TTL)
    batch = JoinBatch(predictions=[record], specs={"fraud": SPEC}, windows={"fraud": 60})
    with pytest.raises(OffsetConflict) as info:
        store.commit(
            [OffsetAdvance(LABELS, 0, None, 3, T + 2.0)], {}, batch, [OffsetFence(TOPIC, 0, 4)]
        )
    assert info.value.partitions == [(TOPIC, 0)]
    with sql() as s:
        assert s.scalar(select(func.count()).select_from(PendingPrediction)) == 0
        assert s.scalar(select(func.count()).select_from(PerformanceAggregate)) == 0
    store.commit(
        [OffsetAdvance(LABELS, 0, None, 3, T + 2.0)], {}, batch, [OffsetFence(TOPIC, 0, 5)]
    )
    with sql() as s:
        assert s.scalar(select(func.count()).select_from(PendingPrediction)) == 1


def test_the_observer_sees_joined_pairs_in_the_flush_transaction(sql: Any, clock: Any) -> None:
    seen: list[tuple[int, list[tuple[str, str]]]] = []

    class Observer:
        def joined(self, session: Session, pairs: Mapping[int, list[Any]]) -> list[Any]:
            assert session.in_transaction()
            for partition, joined in sorted(pairs.items()):
                seen.append((partition, [(p.prediction.event_id, p.actual) for p in joined]))
            return []

    r = JoinRig(sql, clock)
    r.loop.labels.observer = Observer()
    r.step(labels=[label(T + 9, "b", 1)])
    r.step(preds=[pred(T + 5, "a"), pred(T + 6, "b")], labels=[label(T + 10, "a", 0)])
    assert seen == [(0, [("b", "1"), ("a", "0")])]


def test_predictions_expire_two_ttls_on_when_the_labels_stall(sql: Any, clock: Any) -> None:
    r = JoinRig(sql, clock)
    r.step(preds=[pred(T + 5, "a"), pred(T + 50, "b")])
    # No label ever arrives; the predictions' own watermark moves on.
    r.step(preds=[pred(T + 5 + TTL + 1, "c")])
    assert r.unlabeled() == 0  # one TTL on, a's label may still be on its way
    r.step(preds=[pred(T + 5 + 2 * TTL + 1, "d")])
    assert r.unlabeled() == 1
    assert r.window()[:3] == (2, 0, 1)
