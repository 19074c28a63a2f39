"""IngestLoop, driven step by step over a fake consumer and a fake clock, against real SQL."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from consumers.checkpoint import CheckpointStore
from consumers.dlq import DeadLetterPublisher
from consumers.errors import ConsumerError
from consumers.loop import IngestLoop, IngestSettings
from consumers.positions import Rebalance
from consumers.versions import StreamCaps
from db.models import ConsumerOffset, WindowAggregate
from db.repositories import OffsetAdvance, OffsetRepository, WindowAggregateRepository
from db.session import make_engine, make_session_factory
from drift.schema import FeatureKind, FeatureSpec
from tests.harness.ingest import (
    DECODER,
    FRAUD,
    GROUP,
    TOPIC,
    FakeClock,
    FakeConsumer,
    FakeProducer,
    FlakyStore,
    Stats,
    T,
    letters,
)


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


def ev(t: float, amount: float = 1.0) -> bytes:
    raw = {
        "event_id": f"e{t}",
        "model": "fraud",
        "model_version": "v1",
        "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
        "features": {"amount": amount},
        "prediction": 0.25,
    }
    return json.dumps(raw).encode()


def spaced(n: int, first: int = 0) -> list[bytes]:
    """Events i = first..n-1 at T + 20 i: three per 60 s window."""
    return [ev(T + 20 * i) for i in range(first, n)]


@dataclass
class Rig:
    loop: IngestLoop
    consumer: FakeConsumer
    store: FlakyStore
    producer: FakeProducer
    stats: Stats

    def drain(self) -> None:
        while batch := self.loop._poll(0):
            self.loop._process(batch)

    def flush(self) -> None:
        assert self.loop._flush_with_retry(deadline=None) is True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T + 100.0)  # backoff waits advance it


@pytest.fixture
def sql(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


def rig(
    sql: sessionmaker[Session],
    clock: FakeClock,
    parts: dict[int, list[bytes]],
    max_records: int = 2,
    subscribe: bool = True,
    **settings: Any,
) -> Rig:
    consumer = FakeConsumer(clock, map(tp, parts), max_records)
    for p, values in parts.items():
        consumer.append(tp(p), *values)
    store = FlakyStore(sql, GROUP, clock)
    producer, stats = FakeProducer(), Stats()
    loop = IngestLoop(
        consumer,
        DECODER,
        store,
        DeadLetterPublisher(lambda: producer, "dead-letters"),
        IngestSettings(TOPIC, max_backoff=1.0, **settings),
        stats,
        clock=clock,
    )
    if subscribe:
        loop.consumer.subscribe([TOPIC], listener=Rebalance(loop))
    return Rig(loop, consumer, store, producer, stats)


def windows(sql: sessionmaker[Session]) -> dict[int, tuple[int, int]]:
    """(events, late) per window, keyed by the window's start minus T."""
    with sql() as s:
        counts = WindowAggregateRepository(s).window_counts("fraud")
    return {int(c.window_start.timestamp()) - T: (c.events, c.late) for c in counts}


def per_partition(sql: sessionmaker[Session]) -> dict[int, int]:
    wa = WindowAggregate
    with sql() as s:
        rows = s.execute(select(wa.partition, func.sum(wa.event_count)).group_by(wa.partition))
        return {p: int(n) for p, n in rows}


def offsets(sql: sessionmaker[Session]) -> dict[int, tuple[int, float | None]]:
    with sql() as s:
        stored = OffsetRepository(s, GROUP).load(TOPIC, range(8))
    return {p: (o.next_offset, o.watermark) for p, o in stored.items()}


def test_three_partitions_flush_counts_and_next_offsets(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {0: spaced(4), 1: spaced(5), 2: spaced(6)})
    r.drain()
    assert r.consumer.seeks == [(tp(0), 0), (tp(1), 0), (tp(2), 0)]  # nothing stored yet
    assert windows(sql) == {}
    r.flush()
    assert windows(sql) == {0: (9, 0), 60: (6, 0)}
    assert per_partition(sql) == {0: 4, 1: 5, 2: 6}
    assert offsets(sql) == {0: (4, T + 60), 1: (5, T + 80), 2: (6, T + 100)}
    assert r.consumer.commits == [{tp(0): 4, tp(1): 5, tp(2): 6}]
    assert [events for _, events in r.stats.of("flushed")] == [15]
    assert r.loop.acc.events == 0
    assert r.loop.book.pending() == []


def test_a_flush_longer_than_the_interval_spaces_the_next_to_its_share_of_the_loop(
    sql: Any, clock: FakeClock
) -> None:
    r = rig(sql, clock, {0: spaced(6)}, flush_interval=2.0, max_flush_share=0.25, flush_events=4)
    commit = r.store.commit

    def slow(*args: Any, **options: Any) -> Any:
        clock.sleep(3.0)  # a flush of many window rows
        return commit(*args, **options)

    r.store.commit = slow  # type: ignore[method-assign]
    r.drain()
    started = clock.now
    r.flush()
    assert ("flushed", (3.0, 6)) in r.stats.calls
    r.consumer.append(tp(0), *spaced(9, first=6))
    r.drain()
    clock.now = started + 11.9  # by flush_interval alone it was due from start + 2
    assert not r.loop._flush_due()
    clock.now = started + 12.0  # 3 s of flushing is a quarter of 12 s
    assert r.loop._flush_due()
    started = clock.now
    r.flush()
    r.consumer.append(tp(0), *spaced(12, first=9))
    r.drain()
    clock.now = started + 5.0
    assert not r.loop._flush_due()
    r.consumer.append(tp(0), *spaced(13, first=12))
    r.drain()
    assert r.loop._flush_due()  # flush_events (4) flushes at once, however long the last
    r.store.commit = commit  # type: ignore[method-assign]
    started = clock.now
    r.flush()  # a quick one: flush_interval spaces the next again
    r.consumer.append(tp(0), *spaced(14, first=13))
    r.drain()
    clock.now = started + 1.9
    assert not r.loop._flush_due()
    clock.now = started + 2.0
    assert r.loop._flush_due()


def test_invalid_events_are_dead_lettered_and_skipped(sql: Any, clock: FakeClock) -> None:
    unknown = json.dumps({"model": "nope", "event_id": "x"}).encode()
    r = rig(sql, clock, {0: [ev(T + 1), b"{not json", ev(T + 2), b"", unknown, ev(T + 3)]})
    r.drain()
    r.flush()
    sent = letters(r.producer)
    assert [(d["topic"], d["partition"], d["offset"]) for d in sent] == [
        (TOPIC, 0, 1),
        (TOPIC, 0, 3),
        (TOPIC, 0, 4),
    ]
    assert [d["key"] for d in sent] == ["k1", "k3", "k4"]
    assert "not valid JSON" in sent[0]["reason"]
    assert "no value" in sent[1]["reason"]
    assert "'nope' is not configured" in sent[2]["reason"]
    assert {topic for topic, _, _ in r.producer.sent} == {"dead-letters"}
    assert r.stats.of("invalid") == ["malformed", "empty", "unknown_model"]
    assert windows(sql) == {0: (3, 0)}
    assert offsets(sql) == {0: (6, T + 3)}


def test_offsets_wait_for_every_dead_letter_to_be_acknowledged(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {0: [ev(T + 1), b"", ev(T + 2)]})
    r.producer.failing = 1
    r.drain()
    r.flush()
    assert r.stats.of("flush_failed") == ["DeadLetterError"]
    assert r.store.commit_calls == 1  # no SQL commit while a dead letter was unconfirmed
    assert [d["offset"] for d in letters(r.producer)] == [1, 1]  # sent again
    assert windows(sql) == {0: (2, 0)}
    assert offsets(sql) == {0: (3, T + 2)}


def test_restart_seeks_to_stored_offsets_without_double_counting(
    sql: Any, clock: FakeClock
) -> None:
    parts = {0: spaced(4), 1: spaced(5), 2: spaced(6)}
    first = rig(sql, clock, parts)
    first.drain()
    first.flush()
    second = rig(sql, clock, parts)
    second.consumer.append(tp(0), *spaced(6, first=4))
    second.store.fail_loads = 2  # the assignment retries reading the offsets
    second.drain()
    assert second.consumer.seeks == [(tp(0), 4), (tp(1), 5), (tp(2), 6)]
    assert second.stats.of("healthy")[:3] == [False, False, True]
    second.flush()
    assert windows(sql) == {0: (9, 0), 60: (8, 0)}
    assert per_partition(sql) == {0: 6, 1: 5, 2: 6}
    assert offsets(sql)[0] == (6, T + 100)
    assert second.consumer.commits == [{tp(0): 6}]


def test_database_outage_pauses_retries_and_commits_once(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {0: spaced(3), 1: spaced(3), 2: spaced(3)})
    r.drain()
    r.store.fail_commits = 3
    r.consumer.append(tp(1), ev(T + 70))  # arrives during the outage: not fetched while paused
    polls, healths = len(r.consumer.paused_at_poll), len(r.stats.of("healthy"))
    r.flush()
    assert r.store.commit_calls == 4
    everything = frozenset(map(tp, range(3)))
    assert set(r.consumer.paused_at_poll[polls:]) == {everything}
    assert r.consumer.paused == set()  # resumed once the flush went through
    assert r.stats.of("flush_failed") == ["StoreUnavailable"] * 3
    health = r.stats.of("healthy")[healths:]
    assert health[0] is False
    assert health[-1] is True
    assert windows(sql) == {0: (9, 0)}
    assert offsets(sql) == {p: (3, T + 40) for p in range(3)}
    r.drain()
    r.flush()
    assert windows(sql) == {0: (9, 0), 60: (1, 0)}
    assert per_partition(sql) == {0: 3, 1: 4, 2: 3}


def test_lost_acknowledgement_is_recognised_as_own_commit(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {0: spaced(3), 1: spaced(4), 2: spaced(5)})
    r.drain()
    seeks = list(r.consumer.seeks)
    r.store.lose_acks = 1
    r.flush()
    assert r.store.commit_calls == 2
    assert r.stats.of("offset_conflicts") == []  # our own commit is no conflict
    assert r.consumer.commits[-1] == {tp(0): 3, tp(1): 4, tp(2): 5}  # lag tools catch up
    assert windows(sql) == {0: (9, 0), 60: (3, 0)}
    assert offsets(sql) == {0: (3, T + 40), 1: (4, T + 60), 2: (5, T + 80)}
    assert r.consumer.seeks == seeks  # positions already match SQL: no re-seek
    assert (r.loop.acc.deltas, r.loop.acc.events, r.loop.book.pending()) == ({}, 0, [])
    r.consumer.append(tp(0), ev(T + 61))
    r.drain()
    r.flush()  # the book expects what SQL holds: the next commit chains on
    assert windows(sql) == {0: (9, 0), 60: (4, 0)}
    assert offsets(sql)[0] == (4, T + 61)


def test_fenced_partition_is_dropped_and_reseeked(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {p: spaced(4) for p in range(3)})
    r.drain()
    r.flush()
    for p in range(3):
        r.consumer.append(tp(p), *spaced(8, first=4))
    r.drain()
    # Another consumer, owning partition 1 meanwhile, stored offsets 4 and 5.
    CheckpointStore(sql, GROUP, clock.time).commit([OffsetAdvance(TOPIC, 1, 4, 6, T + 100.0)], {})
    r.flush()
    assert r.stats.of("offset_conflicts") == [1]
    assert r.consumer.seeks[-1] == (tp(1), 6)
    assert offsets(sql) == {0: (8, T + 140), 1: (6, T + 100), 2: (8, T + 140)}
    assert per_partition(sql) == {0: 8, 1: 4, 2: 8}
    assert r.consumer.commits[-1] == {tp(0): 8, tp(2): 8}
    r.drain()  # partition 1 resumes at 6
    r.flush()
    assert offsets(sql)[1] == (8, T + 140)
    assert per_partition(sql) == {0: 8, 1: 6, 2: 8}


def test_revocation_flushes_first_or_drops_buffers_if_database_down(
    sql: Any, clock: FakeClock
) -> None:
    r = rig(sql, clock, {p: spaced(3) for p in range(3)})
    r.drain()
    r.consumer.rebalance(0, 1)
    assert r.loop._poll(0) == {}  # revoke (flushes) + assign (seeks to SQL) inside poll
    assert offsets(sql) == {p: (3, T + 40) for p in range(3)}
    assert windows(sql) == {0: (9, 0)}
    assert r.consumer.seeks[-2:] == [(tp(0), 3), (tp(1), 3)]
    assert r.loop.book.owned() == [(TOPIC, 0), (TOPIC, 1)]
    for p in range(3):
        r.consumer.append(tp(p), *spaced(5, first=3))
    r.drain()
    r.store.fail_commits = 1000
    r.consumer.rebalance(0)  # partition 1 goes to another consumer
    batch = r.loop._poll(0)
    assert r.store.commit_calls > 2  # retried until the shutdown budget ran out
    assert r.loop.acc.events == 0  # every revoked partition's buffer was dropped
    assert offsets(sql) == {p: (3, T + 40) for p in range(3)}
    assert r.consumer.seeks[-1] == (tp(0), 3)
    assert r.loop.book.owned() == [(TOPIC, 0)]
    r.store.fail_commits = 0
    r.loop._process(batch)
    r.consumer.rebalance(0, 1, 2)  # the revocation flushes partition 0 this time
    r.drain()
    assert r.consumer.seeks[-3:] == [(tp(0), 5), (tp(1), 3), (tp(2), 3)]
    r.flush()
    assert windows(sql) == {0: (9, 0), 60: (6, 0)}
    assert offsets(sql) == {p: (5, T + 80) for p in range(3)}


def test_late_events_and_watermark_survive_restart(sql: Any, clock: FakeClock) -> None:
    # The watermark T+200 is past window T's close (T+60) plus lateness (10 s).
    values = [ev(T + 5), ev(T + 200), ev(T + 10)]
    first = rig(sql, clock, {0: values}, max_records=10)
    first.drain()
    first.flush()
    assert windows(sql) == {0: (1, 1), 180: (1, 0)}
    assert offsets(sql) == {0: (3, T + 200)}
    assert first.stats.of("late") == [("fraud", 1)]
    second = rig(sql, clock, {0: [*values, ev(T + 30), ev(T + 215)]})
    second.drain()
    second.flush()
    # T+30 is late only because the stored watermark was restored.
    assert windows(sql) == {0: (1, 2), 180: (2, 0)}
    assert offsets(sql) == {0: (5, T + 215)}


def test_events_from_the_future_are_dead_lettered(sql: Any, clock: FakeClock) -> None:
    skew = 3600.0
    ahead = clock.now + skew + 1
    values = [ev(T + 10), ev(ahead), ev(T + 20), b"{", ev(ahead + 1000)]
    r = rig(sql, clock, {0: values}, max_records=10, max_clock_skew=skew)
    r.drain()
    r.flush()
    sent = letters(r.producer)
    assert [d["offset"] for d in sent] == [1, 3, 4]
    assert ["ahead of the consumer's clock" in d["reason"] for d in sent] == [True, False, True]
    assert r.stats.of("invalid") == ["timestamp", "malformed", "timestamp"]
    assert windows(sql) == {0: (2, 0)}
    assert offsets(sql) == {0: (5, T + 20)}  # rejected events do not move the watermark


def test_kafka_errors_from_poll(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {0: spaced(2)})
    r.consumer.errors.append(KafkaConnectionError("broker down"))
    before = clock.now
    assert r.loop._poll(0) == {}
    assert clock.now == before + 0.5  # backed off on the stop event, not on the wall clock
    assert r.stats.of("healthy") == [False]
    assert r.loop._poll(0) == {tp(0): r.consumer.log[tp(0)]}
    assert r.stats.of("healthy")[-1] is True
    r.consumer.errors.append(TopicAuthorizationFailedError("no access"))
    with pytest.raises(ConsumerError, match="kafka consumer failed"):
        r.loop._poll(0)


def test_run_consumes_until_stopped_then_flushes_and_closes(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {0: spaced(3), 1: spaced(2)}, subscribe=False)

    class StopWhenDrained(threading.Event):
        def is_set(self) -> bool:
            c = r.consumer
            return bool(c.assigned) and all(c.position.get(p) == len(c.log[p]) for p in c.assigned)

    r.loop.run(StopWhenDrained())
    assert len(r.stats.of("flushed")) == 1  # no flush was due before the shutdown flush
    assert r.consumer.closed is False  # closed without Kafka's autocommit
    assert windows(sql) == {0: (5, 0)}
    assert offsets(sql) == {0: (3, T + 40), 1: (2, T + 20)}
    assert r.stats.of("lag") == [(TOPIC, 0, 1), (TOPIC, 1, 0)]


def test_conflict_with_no_stored_offset_rewinds(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {p: spaced(4) for p in range(2)})
    r.drain()
    r.flush()
    r.consumer.append(tp(1), *spaced(8, first=4))
    r.drain()
    with sql() as s, s.begin():  # an operator resets partition 1: SQL holds nothing for it
        s.execute(delete(ConsumerOffset).where(ConsumerOffset.partition == 1))
    r.flush()
    assert r.stats.of("offset_conflicts") == [1]
    # Offsets 4..7 were dropped from the buffer; processing must restart from what
    # SQL holds (nothing: the beginning, as on assignment), not skip past them.
    assert r.consumer.position[tp(1)] == 0


def test_shutdown_while_assignment_waits_for_the_database_does_not_hang(
    sql: Any, clock: FakeClock
) -> None:
    r = rig(sql, clock, {0: spaced(3)}, subscribe=False)
    r.store.fail_loads = 10**6  # the database never comes back

    start = clock.now

    class StopAfterAMinute(threading.Event):
        def is_set(self) -> bool:
            return clock.now > start + 60

    r.loop.run(StopAfterAMinute())
    assert clock.now > start + 60, "the assignment waited for the database until shutdown"
    assert r.consumer.closed is False
    assert windows(sql) == {} and offsets(sql) == {}
    assert r.stats.of("healthy")[-1] is False


def test_progress_marks_partitions_with_unflushed_or_unread_events_busy(
    sql: Any, clock: FakeClock
) -> None:
    r = rig(sql, clock, {0: spaced(4), 1: spaced(5), 2: spaced(6)})
    r.drain()
    clock.now += 2
    r.loop._report_lag()
    assert r.loop.progress.partitions == {0, 1, 2}
    assert r.loop.progress.busy == {0, 1, 2}  # read but not flushed
    r.flush()
    r.consumer.append(tp(1), ev(T + 200))  # a new event arrives
    clock.now += 2
    r.loop._report_lag()
    assert r.loop.progress.busy == {1}


def test_progress_says_whether_the_replica_holds_its_assignment(sql: Any, clock: FakeClock) -> None:
    # Windows are final only with the assignment held (service.watermarks).
    r = rig(sql, clock, {0: spaced(2), 1: spaced(2)}, subscribe=False)
    assert r.loop.progress.assigned is False  # started, not yet in the group
    r.loop.consumer.subscribe([TOPIC], listener=Rebalance(r.loop))
    r.drain()
    assert r.loop.progress.assigned is True
    assert {(o.topic, o.partition) for o in r.loop.progress.owned} == {(TOPIC, 0), (TOPIC, 1)}
    r.loop.on_revoked([tp(0), tp(1)])  # a rebalance begins
    assert r.loop.progress.assigned is False
    clock.now += 2
    r.loop._report_lag()
    assert r.loop.progress.assigned is False  # a survey does not end the rebalance
    r.loop.on_assigned([tp(1)])
    assert r.loop.progress.assigned is True


def test_replacing_models_flushes_then_writes_rows_of_the_new_layout(
    sql: Any, clock: FakeClock
) -> None:
    r = rig(sql, clock, {0: spaced(2)})
    r.drain()
    rebinned = replace(
        FRAUD, features=(FeatureSpec("amount", FeatureKind.NUMERICAL, edges=(0.0, 5.0, 50.0)),)
    )
    r.loop.replace_models({"fraud": rebinned})
    r.loop._apply_new_specs()
    assert windows(sql) == {0: (2, 0)}  # what was buffered went out under the old specs
    r.consumer.append(tp(0), ev(T + 41))
    r.drain()
    r.flush()
    with sql() as s:
        layouts = s.execute(select(WindowAggregate.layout, WindowAggregate.event_count)).all()
    assert sorted(n for _, n in layouts) == [1, 2]
    assert {layout for layout, _ in layouts} == {FRAUD.layout, rebinned.layout}


def test_poison_pill_is_dead_lettered_and_its_batch_counted(sql: Any, clock: FakeClock) -> None:
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000  # RecursionError in the JSON parser
    bad_utf8 = ev(T + 4).replace(b'"v1"', b'"v\xff"')
    values = [ev(T + 1), deep, ev(T + 2), bad_utf8, ev(T + 3)]
    r = rig(sql, clock, {0: values}, max_records=10)
    r.drain()
    r.flush()
    sent = letters(r.producer)
    assert [d["offset"] for d in sent] == [1, 3]
    assert "nested" in sent[0]["reason"] and "UTF-8" in sent[1]["reason"]
    assert r.stats.of("invalid") == ["malformed", "malformed"]
    assert windows(sql) == {0: (3, 0)}
    assert offsets(sql) == {0: (5, T + 3)}


def test_dead_letter_producer_that_cannot_be_created_is_retried(sql: Any, clock: FakeClock) -> None:
    r = rig(sql, clock, {0: [ev(T + 1), b"", ev(T + 2), b"{", ev(T + 3)]})
    attempts: list[int] = []

    def make_producer() -> FakeProducer:
        attempts.append(1)
        if len(attempts) <= 3:
            raise KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")
        return r.producer

    r.loop.dlq = DeadLetterPublisher(make_producer, "dead-letters")
    r.drain()  # the failure to create the producer does not escape the loop
    healths = len(r.stats.of("healthy"))
    r.flush()
    assert len(attempts) == 4  # one per confirm: publishing never blocks on creating it
    assert r.stats.of("flush_failed") == ["DeadLetterError"] * 3
    assert r.stats.of("healthy")[healths:][0] is False
    assert r.stats.of("healthy")[-1] is True
    assert [d["offset"] for d in letters(r.producer)] == [1, 3]  # each exactly once
    assert windows(sql) == {0: (3, 0)}
    assert offsets(sql) == {0: (5, T + 3)}


def test_a_message_too_large_to_dead_letter_whole_is_dead_lettered_truncated(
    sql: Any, clock: FakeClock
) -> None:
    huge = b'{"event_id": "' + b"x" * 900_000 + b'"}'  # under Kafka's 1 MB, not once in base64
    r = rig(sql, clock, {0: [ev(T + 1), huge, ev(T + 2)]}, max_records=10)
    r.drain()
    assert r.loop._flush_with_retry(deadline=clock.monotonic() + 30) is True
    [letter] = letters(r.producer)
    assert letter["offset"] == 1
    assert letter["value_size"] == len(huge)
    kept = base64.b64decode(letter["value_b64"])
    assert 0 < len(kept) < len(huge) and huge.startswith(kept)
    assert windows(sql) == {0: (2, 0)}
    assert offsets(sql) == {0: (3, T + 2)}


def test_a_flush_retried_for_minutes_keeps_the_progress_current_enough_to_see_a_stall(
    sql: Any, clock: FakeClock
) -> None:
    from service.monitoring.stalls import StallDetector

    r = rig(sql, clock, {0: spaced(3), 1: spaced(3), 2: []})
    r.drain()
    detector = StallDetector(300.0, clock.monotonic)
    seen = []
    commit = r.store.commit

    def observed(*args: Any, **options: Any) -> Any:
        # What the stall watch would see on its thread while the flush is retried.
        stall = detector.observe(r.loop.progress)
        seen.append(None if stall is None else sorted(stall.partitions))
        return commit(*args, **options)

    r.store.commit = observed  # type: ignore[method-assign]
    r.store.fail_commits = 600  # ten minutes of backoff at most 1 s each
    r.flush()
    assert [(TOPIC, 0), (TOPIC, 1)] in seen  # partition 2 has nothing waiting
    assert seen[0] is None
    clock.now += 2
    r.loop._report_lag()
    assert detector.observe(r.loop.progress) is None  # the flush went through


def test_versions_past_the_cap_are_dead_lettered_with_the_reason_and_counted(
    sql: Any, clock: FakeClock
) -> None:
    def of(version: str, t: float) -> bytes:
        raw = json.loads(ev(t))
        raw["model_version"] = version
        return json.dumps(raw).encode()

    values = [of(f"v{i}", T + 1) for i in range(5)] + [of("v0", T + 2), of("v1", T + 61)]
    values += [of(f"n{i}", T + 62) for i in range(3)]  # the next window takes versions anew
    caps = StreamCaps(max_versions=2)
    r = rig(sql, clock, {0: values}, max_records=3, caps=caps)
    r.drain()
    r.flush()
    sent = letters(r.producer)
    assert [d["offset"] for d in sent] == [2, 3, 4, 8, 9]
    assert "already has 2 live versions" in sent[0]["reason"]
    assert "'v2'" in sent[0]["reason"] and "ingest.max_versions" in sent[0]["reason"]
    assert r.stats.of("invalid") == ["version_cap"] * 5
    with sql() as s:
        stored = set(s.execute(select(WindowAggregate.model_version, WindowAggregate.window_start)))
    assert {(v, int(start.replace(tzinfo=UTC).timestamp()) - T) for v, start in stored} == {
        ("v0", 0),
        ("v1", 0),
        ("v1", 60),
        ("n0", 60),
    }
    assert offsets(sql) == {0: (10, T + 62)}


@pytest.mark.parametrize("chunk", [1, 3, 4096])
def test_a_poll_is_handled_the_same_in_chunks_of_any_size(
    sql: Any, clock: FakeClock, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The loop takes a partition's records CHUNK_RECORDS at a time: the dead letters'
    # offsets, the watermark that makes the later events late and the stored offsets
    # must not depend on where the chunks end.
    monkeypatch.setattr("consumers.loop.CHUNK_RECORDS", chunk)
    values = [ev(T + 5), ev(T + 200), b"{", ev(T + 10), ev(T + 210), b"", ev(T + 30)]
    r = rig(sql, clock, {0: [*values, ev(T + 215), ev(T + 220)]}, max_records=100)
    batch = r.loop._poll(0)
    assert [len(records) for records in batch.values()] == [9]  # one poll
    r.loop._process(batch)
    r.flush()
    assert [d["offset"] for d in letters(r.producer)] == [2, 5]
    split = chunk < 4  # the two late events fall in different chunks
    assert r.stats.of("late") == ([("fraud", 1), ("fraud", 1)] if split else [("fraud", 2)])
    assert windows(sql) == {0: (1, 2), 180: (4, 0)}
    assert offsets(sql) == {0: (9, T + 220)}


def test_a_stop_bounds_a_flush_retried_without_a_deadline(sql: Any, clock: FakeClock) -> None:
    # The database is down for good and the service is told to stop while the loop's
    # periodic flush retries: the flush gives up within the shutdown budget (nothing
    # is lost, the events are read again), and the final flush does not start another.
    r = rig(sql, clock, {0: spaced(3)}, shutdown_budget=8.0)
    r.drain()
    r.store.fail_commits = 2000
    r.loop._stop.set()
    started = clock.monotonic()
    assert r.loop._flush_with_retry(deadline=None) is False
    assert 2 < r.store.commit_calls < 20
    assert clock.monotonic() - started <= 8.0
    # The final flush has what is left of the same budget, not a budget of its own.
    assert r.loop._flush_with_retry(deadline=r.loop._shutdown_deadline()) is False
    assert clock.monotonic() - started <= 8.0
    assert offsets(sql) == {}
