"""A consumer that stops fetching is seen by the broker's end offsets and replaced.

The service's own parts against the test broker: the loop ``build_ingest_loop``
makes (with its factory of new consumers), and the stall watch ``build_watches``
makes with the broker-side end offsets and the loop's ``recycle``. The stop is
made by construction: the first consumer pauses its partitions before every poll
from a given moment on, so it keeps its group membership, fetches nothing and
keeps the high watermark of its last fetch, by which nothing waits; the new
events are sent once no fetch of it is in flight. The watch is ticked by the
test rather than by the scheduler. Without the broker's end offsets the watch
sees no stall and the test fails on "no new consumer was asked for".
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from consumers.clients import ConsumerClient
from db.repositories import OffsetRepository
from db.session import make_engine, make_session_factory
from service.kafka_clients import BrokerEnds
from service.metrics import Metrics
from service.wiring.monitoring import build_ingest_loop
from service.wiring.watches import build_tally, build_watches
from tests.harness.kafka import TestKafka
from tests.harness.scenario import fresh_ingest, stored_counts, wait_for_count

pytestmark = pytest.mark.kafka

FIRST, THEN = 600, 900


class Silenced:
    """The loop's first consumer, told when to stop fetching."""

    def __init__(self, inner: ConsumerClient) -> None:
        self.inner = inner
        self.silent = threading.Event()
        self.silent_polls = 0
        self.closed = False

    def poll(self, timeout_ms: int = 0) -> Any:
        if self.silent.is_set():
            self.silent_polls += 1
            self.inner.pause(*self.inner.assignment())
        return self.inner.poll(timeout_ms=timeout_ms)

    def close(self, autocommit: bool = True) -> None:
        self.closed = True
        self.inner.close(autocommit=autocommit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_consumer_that_stopped_fetching_is_replaced_and_nothing_is_lost_or_doubled(
    kafka: TestKafka, tmp_path: Path
) -> None:
    ingest = fresh_ingest(kafka, tmp_path, "recycle", partitions=2)
    metrics = Metrics()
    loop = build_ingest_loop(ingest.cfg, metrics)
    first = Silenced(loop.consumer)
    loop.consumer = loop.positions.consumer = first  # type: ignore[assignment]
    alerts = ingest.cfg.alerts.model_copy(update={"stalled_after": 1.0})
    cfg = ingest.cfg.model_copy(update={"alerts": alerts})
    engine = make_engine(ingest.db)
    ends = BrokerEnds(cfg.kafka)
    watches = build_watches(
        cfg,
        make_session_factory(engine),
        lambda: loop.progress,
        build_tally(cfg),
        loop.recycle,
        ends,
    )
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    producer = kafka.producer()

    def stored() -> int:
        return sum(stored_counts(ingest.db).values())

    def send(first_index: int, count: int) -> None:
        for i in range(first_index, first_index + count):
            producer.send(ingest.topic, key=b"k%d" % i, value=ingest.event(i))
        producer.flush()

    def recycled() -> int:
        watches.stalls.tick()
        return int(first.closed)

    try:
        send(0, FIRST)
        assert wait_for_count(stored, FIRST, timeout=60) == FIRST
        first.silent.set()
        assert wait_for_count(lambda: first.silent_polls, 1, timeout=30) >= 1
        # Paused, it sends no fetch; one sent before may still come back, and its
        # answer would carry the new end. Wait it out: from then on it fetches nothing.
        fetcher = first.inner._fetcher  # type: ignore[attr-defined]
        assert wait_for_count(lambda: int(not fetcher._nodes_with_pending_fetch_requests), 1, 30)
        send(FIRST, THEN)
        # By the silenced client's own account all was read: the watch must ask the broker.
        loop._report_lag()
        assert sum(o.high or 0 for o in loop.progress.owned) == FIRST
        assert stored() == FIRST
        assert wait_for_count(recycled, 1, timeout=60) == 1, "no new consumer was asked for"
        assert wait_for_count(stored, FIRST + THEN, timeout=60) == FIRST + THEN
        with make_session_factory(engine)() as session:
            stored_offsets = OffsetRepository(session, cfg.kafka.group_id).load(
                ingest.topic, [0, 1]
            )
        broker_ends = ends([(ingest.topic, 0), (ingest.topic, 1)])
    finally:
        stop.set()
        runner.join(30)
        producer.close()
        ends.close()
        loop.dlq.close(timeout=2.0)
        engine.dispose()
    assert not runner.is_alive()
    assert stored() == FIRST + THEN  # each offset counted once: SQL ends where the log does
    assert {p: o.next_offset for p, o in stored_offsets.items()} == {
        p: broker_ends[(ingest.topic, p)] for p in (0, 1)
    }
    assert metrics.registry.get_sample_value("driftwatch_consumer_recycles_total") == 1
    assert loop.consumer is not first
