"""A hostile stream cannot grow the consumer's state: the caps hold, the rest is counted.

Two halves, as the issue asks:

- 1,000,000 distinct category values go through the consumer's own path in this
  process (IngestLoop: decode, version gate, aggregation, the flush's merge into
  SQL), over the fake consumer, because a million messages through the test broker
  would take minutes here; the stored sketches are real SQL rows.
- 10,000 distinct model versions go through the real service path against the test
  Kafka broker: the loop ``build_ingest_loop`` makes from a config, reading the
  registry's production and canary versions from SQL, dead-lettering to the real
  dead-letter topic.
"""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from kafka import TopicPartition
from sqlalchemy import func, select

import consumers.fakes
from consumers.dlq import DeadLetterPublisher
from consumers.events import EventDecoder
from consumers.fakes import FakeClock, FakeConsumer, FakeProducer
from consumers.loop import IngestLoop, IngestSettings
from consumers.positions import Rebalance
from consumers.versions import StreamCaps
from db.layouts import LayoutRepository
from db.migrate import upgrade
from db.models import WindowAggregate
from db.registry import RegistryRepository, Stage
from db.session import make_engine, make_session_factory
from drift.categories import CategoricalSketch
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import CategoryCaps, WindowSketch
from tests.harness.ingest import FlakyStore, Stats
from tests.harness.inprocess import InProcessService
from tests.harness.kafka import TestKafka
from tests.harness.scenario import create_topics, wait_for_count, wide_model, write_config

# Minutes of wall clock: scheduled first under `make test` (tests/conftest.py).
pytestmark = pytest.mark.slow

T = 1_800_000_000
TOPIC, GROUP = "predictions", "caps"
SHOP = ModelSpec(
    "shop",
    (
        FeatureSpec("item", FeatureKind.CATEGORICAL),
        FeatureSpec("amount", FeatureKind.NUMERICAL, edges=(0.0, 10.0, 100.0)),
    ),
    PredictionSpec(PredictionKind.CATEGORICAL),
    window_seconds=3600,
)
VALUES, CHUNK, PARTITIONS = 1_000_000, 50_000, 2
CAPS = CategoryCaps(max_values=1000, max_length=64)


def shop_event(i: int) -> bytes:
    # Every 1000th value is too long to keep; the others are all distinct.
    item = "x" * 100 + str(i) if i % 1000 == 0 else f"item-{i}"
    return (
        b'{"event_id":"e%d","model":"shop","model_version":"v1","timestamp":"%s",'
        b'"features":{"item":"%s","amount":5.0},"prediction":"class-%d"}'
        % (i, _stamp(T + i * 7200 // VALUES).encode(), item.encode(), i % 3)
    )


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _stored(url: str) -> list[tuple[bytes, WindowSketch]]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as s:
            w = WindowAggregate
            rows = s.scalars(select(w.sketch)).all()
            edges = LayoutRepository(s).edges
            return [(bytes(b), WindowSketch.from_bytes(b, edges)) for b in rows]
    finally:
        engine.dispose()


def _held() -> int:
    """Bytes traced outside this test and the fake broker: the consumer's own state."""
    outside = [
        tracemalloc.Filter(False, __file__),
        tracemalloc.Filter(False, consumers.fakes.__file__),
    ]
    traces = tracemalloc.take_snapshot().filter_traces(outside)
    return sum(stat.size for stat in traces.statistics("filename"))


def test_a_million_distinct_categories_keep_every_window_under_its_caps(sqlite_url: str) -> None:
    clock = FakeClock(T + 7200.0)
    parts = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    consumer = FakeConsumer(clock, parts, max_records=5000)
    engine = make_engine(sqlite_url)
    loop = IngestLoop(
        consumer,
        EventDecoder({"shop": SHOP}),
        FlakyStore(make_session_factory(engine), GROUP, clock),
        DeadLetterPublisher(FakeProducer, "dead-letters"),
        IngestSettings(TOPIC, caps=StreamCaps(categories=CAPS)),
        Stats(),
        clock=clock,
    )
    consumer.subscribe([TOPIC], listener=Rebalance(loop))
    tracemalloc.start()
    try:
        held: list[int] = []
        for first in range(0, VALUES, CHUNK):
            for i in range(first, first + CHUNK):
                consumer.append(parts[i % PARTITIONS], shop_event(i))
            while batch := loop._poll(0):
                loop._process(batch)
            assert loop._flush_with_retry(deadline=None)
            # Consumed records are the broker's, not the consumer's state: drop them.
            for part in parts:
                consumer.log[part] = [None] * len(consumer.log[part])  # type: ignore[list-item]
            if first + CHUNK in (VALUES // 5, VALUES):
                gc.collect()
                held.append(_held())
    finally:
        tracemalloc.stop()
        engine.dispose()
    rows = _stored(sqlite_url)
    assert len(rows) <= 2 * PARTITIONS  # two windows of one version, per partition
    sketches = [sketch for _, sketch in rows]
    assert sum(s.events for s in sketches) == VALUES
    items = [s.features["item"] for s in sketches]
    assert all(isinstance(c, CategoricalSketch) for c in items)
    for column in items:
        assert isinstance(column, CategoricalSketch)
        assert len(column.counts) <= CAPS.max_values
        assert all(len(v) <= 64 for v in column.counts)
        assert column.count == column.other + sum(column.counts.values())
    assert sum(c.count for c in items) == VALUES  # nothing lost, the overflow counted
    assert sum(c.other for c in items) >= VALUES - len(rows) * CAPS.max_values
    # What the process holds does not grow with the stream: after the first fifth
    # (200,000 distinct values) and after all of it, within 10% and 4 MiB.
    early, late = held
    print(f"traced memory: {early / 2**20:.1f} MiB after 200k, {late / 2**20:.1f} MiB after 1M")
    assert late <= early * 1.1 + 4 * 2**20
    assert max(len(b) for b, _ in rows) < 64 * 1024  # each stored row stays small


VERSIONS, SERVED = 10_000, 300
MAX_VERSIONS = 5


@pytest.fixture
def caps_service(kafka: TestKafka, tmp_path: Path) -> Iterator[tuple[str, str, Services]]:
    topic = f"caps-{time.time_ns()}"
    create_topics(kafka, topic, partitions=3)
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_engine(db)
    upgrade(engine)
    with make_session_factory(engine).begin() as s:
        registry = RegistryRepository(s)
        now = datetime.now(UTC)
        registry.register("wide", "prod", "file:///p", "a" * 64, Stage.PRODUCTION, now)
        registry.register("wide", "canary", "file:///c", "b" * 64, Stage.CANARY, now)
    engine.dispose()
    config = write_config(
        tmp_path / "c.yaml",
        bootstrap_servers=kafka.bootstrap_servers,
        api_version=kafka.api_version,
        database_url=db,
        topic=topic,
        group_id=topic,
        models={"wide": wide_model(numerical=2, categorical=1, window="1m")},
        extra={
            "ingest": {"flush_events": 5000, "flush_interval": "200ms", "max_versions": 5},
        },
    )
    services = Services(config)
    try:
        yield topic, db, services
    finally:
        services.stop()


class Services:
    """The in-process service of a config, started anew on each ``start``."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.running: InProcessService | None = None

    def start(self) -> InProcessService:
        self.stop()
        self.running = InProcessService(self.config)
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            self.running, running = None, self.running
            running.stop()


def send(kafka: TestKafka, topic: str, events: list[tuple[int, str]], start: float) -> int:
    producer = kafka.producer()
    try:
        for i, version in events:
            producer.send(
                topic, key=b"%s-%d" % (version.encode(), i), value=version_event(i, version, start)
            )
        producer.flush()
    finally:
        producer.close()
    return len(events)


def version_event(i: int, version: str, start: float) -> bytes:
    return json.dumps(
        {
            "event_id": f"{version}-{i}",
            "model": "wide",
            "model_version": version,
            "timestamp": _stamp(start + (i % 120)),  # two one-minute windows
            "features": {"num_00": 1.0, "num_01": 2.0, "cat_0": "a"},
            "prediction": 0.5,
        }
    ).encode()


def refused_count(service: InProcessService) -> int:
    return int(
        sum(
            s.value
            for m in service.metrics.registry.collect()
            if m.name == "driftwatch_events_invalid"
            for s in m.samples
            if s.name.endswith("_total") and s.labels.get("reason") == "version_cap"
        )
    )


@pytest.mark.kafka
def test_ten_thousand_versions_are_capped_per_window_and_the_rest_dead_lettered(
    kafka: TestKafka, caps_service: tuple[str, str, Services]
) -> None:
    topic, db, services = caps_service
    service = services.start()
    start = (time.time() - 86400) // 60 * 60
    flood = [(i, f"x{i}") for i in range(VERSIONS)]
    # The served versions come after the flood, and are never the ones refused.
    served = [(i, v) for i in range(SERVED) for v in ("prod", "canary")]
    sent = send(kafka, topic, flood + served, start)

    def accounted() -> int:
        return sum(e for e in _events_by_version(db).values()) + refused_count(service)

    assert wait_for_count(accounted, sent, timeout=180) == sent
    assert service.alive
    by_version = _events_by_version(db)
    assert by_version["prod"] == by_version["canary"] == SERVED
    admitted = {v for v in by_version if v.startswith("x")}
    assert len(admitted) <= 2 * MAX_VERSIONS  # two windows, five each
    engine = make_engine(db)
    with make_session_factory(engine)() as s:
        w = WindowAggregate
        per_window = Counter(
            start
            for start, _ in s.execute(
                select(w.window_start, w.model_version)
                .where(w.model_version.like("x%"))
                .group_by(w.window_start, w.model_version)
            )
        )
        rows = s.scalar(select(func.count()).select_from(w))
    engine.dispose()
    assert per_window and max(per_window.values()) == MAX_VERSIONS
    assert rows is not None and rows <= 2 * (MAX_VERSIONS + 2) * 3  # windows x versions x parts
    refused = refused_count(service)
    assert refused == VERSIONS - sum(by_version[v] for v in admitted) > 0
    assert sum(len(live) for live in service.loop.versions._live["wide"].values()) <= 10
    letters = _dead_letters(kafka, f"{topic}-dlq", refused)
    assert len({(d["partition"], d["offset"]) for d in letters}) == refused
    assert all("ingest.max_versions" in d["reason"] for d in letters)

    # A restart does not open the cap again: the stored versions fill the windows.
    service = services.start()
    again = sorted(admitted)[0]
    more = [(VERSIONS + i, f"y{i}") for i in range(200)] + [(i, again) for i in range(0, 120, 1)]
    expected = sum(by_version.values()) + send(kafka, topic, more, start)

    def accounted_again() -> int:
        return sum(_events_by_version(db).values()) + refused_count(service)

    assert wait_for_count(accounted_again, expected, timeout=120) == expected
    after = _events_by_version(db)
    assert not any(v.startswith("y") for v in after)
    assert after[again] > by_version[again]  # its window took it again
    assert refused_count(service) == 200 + 120 - (after[again] - by_version[again])


def _events_by_version(db: str) -> Counter[str]:
    engine = make_engine(db)
    try:
        with make_session_factory(engine)() as s:
            w = WindowAggregate
            rows = s.execute(
                select(w.model_version, func.sum(w.event_count)).group_by(w.model_version)
            )
            return Counter({v: int(n) for v, n in rows})
    finally:
        engine.dispose()


def _dead_letters(kafka: TestKafka, topic: str, expected: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    letters: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        letters = [msgspec.json.decode(r.value) for r in kafka.read_all(topic)]
        if len(letters) >= expected:
            break
        time.sleep(0.5)
    return letters
