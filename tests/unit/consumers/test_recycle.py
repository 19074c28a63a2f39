"""Replacing a consumer that stopped fetching (consumers.upkeep), over fakes and real SQL."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from kafka import TopicPartition
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from consumers.dlq import DeadLetterPublisher
from consumers.errors import ConsumerError
from consumers.loop import IngestLoop, IngestSettings
from consumers.retry import Dependency
from db.models import WindowAggregate
from db.repositories import OffsetRepository
from db.session import make_engine, make_session_factory
from tests.harness.ingest import (
    DECODER,
    GROUP,
    TOPIC,
    FakeClock,
    FakeConsumer,
    FakeProducer,
    FlakyStore,
    Stats,
    T,
)

PARTS = (0, 1)
EVENTS = 12  # per partition


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


def ev(i: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"e{i}",
            "model": "fraud",
            "model_version": "v1",
            "timestamp": datetime.fromtimestamp(T + 20 * i, UTC).isoformat(),
            "features": {"amount": float(i)},
            "prediction": 0.25,
        }
    ).encode()


@pytest.fixture
def sql(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


class Broker:
    """The partition logs every consumer built here reads, as one broker's would be."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.first = FakeConsumer(clock, map(tp, PARTS), max_records=2)
        for p in PARTS:
            self.first.append(tp(p), *(ev(i) for i in range(EVENTS)))
        self.built: list[FakeConsumer] = []
        self.failures = 0  # the next builds that raise

    def build(self) -> FakeConsumer:
        if self.failures:
            self.failures -= 1
            raise ConsumerError("cannot connect to Kafka at broker:9092: timed out")
        fresh = FakeConsumer(self.clock, (), max_records=2)
        fresh.log = self.first.log
        self.built.append(fresh)
        return fresh

    def drained(self, consumer: FakeConsumer) -> bool:
        return bool(consumer.assigned) and all(
            consumer.position.get(p) == len(consumer.log[p]) for p in consumer.assigned
        )


def make_loop(
    sql: sessionmaker[Session], clock: FakeClock, broker: Broker, stats: Stats
) -> IngestLoop:
    producer = FakeProducer()
    return IngestLoop(
        broker.first,
        DECODER,
        FlakyStore(sql, GROUP, clock),
        DeadLetterPublisher(lambda: producer, "dead-letters"),
        IngestSettings(TOPIC, max_backoff=1.0),
        stats,
        clock=clock,
        new_consumer=broker.build,
    )


class Script(threading.Event):
    """The loop's stop event, which runs ``step`` each time the loop looks at it; set
    after an hour of the fake clock whatever ``step`` says, so a failure cannot hang."""

    def __init__(self, clock: FakeClock, step: Callable[[], bool]) -> None:
        super().__init__()
        self._clock, self._step, self._end = clock, step, clock.now + 3600

    def is_set(self) -> bool:
        return self._step() or self._clock.now > self._end


def stored(sql: sessionmaker[Session]) -> tuple[int, dict[int, int]]:
    """Events in SQL's window rows, and the next offset stored per partition."""
    with sql() as s:
        events = s.scalar(select(func.sum(WindowAggregate.event_count))) or 0
        offsets = OffsetRepository(s, GROUP).load(TOPIC, PARTS)
    return int(events), {p: o.next_offset for p, o in offsets.items()}


def test_a_silent_consumer_is_replaced_and_every_event_is_counted_once(
    sql: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    clock, stats = FakeClock(T + 100.0), Stats()
    broker = Broker(clock)
    loop = make_loop(sql, clock, broker, stats)
    silent_since: list[float] = []
    asked: list[bool] = []

    def step() -> bool:
        old = broker.first
        if not silent_since and all(old.position.get(tp(p), 0) >= 4 for p in PARTS):
            old.fetching = False  # read 4 of each partition's 12, then nothing more
            silent_since.append(clock.now)
        if silent_since and not asked and clock.now - silent_since[0] >= 10:
            asked.append(loop.recycle("the consumer is stalled"))
        return bool(broker.built) and broker.drained(broker.built[0])

    with caplog.at_level(logging.WARNING, logger="consumers.loop"):
        loop.run(Script(clock, step))

    assert asked == [True]
    assert len(broker.built) == 1 and stats.of("recycled") == [()]
    assert broker.first.closed is False  # closed, without Kafka's autocommit
    fresh = broker.built[0]
    assert fresh.subscribed == [TOPIC]
    # The new client starts where SQL says: after the 4 events of each partition the old
    # one read and the swap flushed, so none is read twice and none skipped.
    assert sorted(fresh.seeks) == [(tp(0), 4), (tp(1), 4)]
    assert stored(sql) == (2 * EVENTS, {0: EVENTS, 1: EVENTS})
    assert "replaced the Kafka consumer: the consumer is stalled" in caplog.text


def test_a_consumer_that_cannot_be_built_leaves_the_old_one_reading(
    sql: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    clock, stats = FakeClock(T + 100.0), Stats()
    broker = Broker(clock)
    broker.failures = 1
    loop = make_loop(sql, clock, broker, stats)
    asked: list[bool] = []

    def step() -> bool:
        if not asked and broker.first.assigned:
            asked.append(loop.recycle("the consumer is stalled"))
        return broker.drained(broker.first)

    with caplog.at_level(logging.WARNING, logger="consumers.upkeep"):
        loop.run(Script(clock, step))

    assert asked == [True] and broker.built == [] and stats.of("recycled") == []
    assert "could not build a new Kafka consumer, keeping the old one: cannot connect" in (
        caplog.text
    )
    assert stored(sql) == (2 * EVENTS, {0: EVENTS, 1: EVENTS})
    assert loop.recycle("again") is True  # the next ask builds


def test_a_recycle_is_refused_while_an_outage_explains_the_stall(
    sql: sessionmaker[Session],
) -> None:
    clock = FakeClock(T + 100.0)
    broker = Broker(clock)
    loop = make_loop(sql, clock, broker, Stats())
    for down in (Dependency.STORE, Dependency.DEAD_LETTERS):
        loop.health.down(down)
        assert loop.recycle("stalled") is False
        loop.health.up(down)
    loop.health.down(Dependency.KAFKA)  # a new client may well help there
    assert loop.recycle("stalled") is True

    without = IngestLoop(
        broker.first,
        DECODER,
        FlakyStore(sql, GROUP, clock),
        DeadLetterPublisher(FakeProducer, "dead-letters"),
        IngestSettings(TOPIC),
        Stats(),
        clock=clock,
    )
    assert without.recycle("stalled") is False  # no way to build one
