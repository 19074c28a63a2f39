"""latency_ms through real Kafka ingestion, kill -9 included: per version and window,
SQL holds the sketch of exactly the latencies produced, none lost or counted twice."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import msgspec
import pytest
from sqlalchemy import select

from consumers.events import EventDecoder
from consumers.synthetic import SyntheticPlan, SyntheticStream, produce
from db.models import WindowAggregate
from db.session import make_engine, make_session_factory
from drift.latency_sketch import LatencySketch
from drift.schema import ModelSpec
from service.config import load_config
from tests.harness.chaos import DeferredProducer, HeldBack, run_chaos
from tests.harness.kafka import TestKafka
from tests.harness.scenario import wide_model

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

Key = tuple[str, int]  # (model version, window start epoch)


def _streams(spec: ModelSpec, start: float, seed: int) -> list[SyntheticStream]:
    return [
        SyntheticStream(
            SyntheticPlan(model=spec, model_version=version, rate=20.0, start=start, seed=seed + i)
        )
        for i, version in enumerate(("v1", "v2"))
    ]


def _drop_some_latencies(held: DeferredProducer) -> None:
    """Every seventh event carries no latency_ms: it counts as an event, not as a latency."""
    for i, (topic, key, value) in enumerate(held.records):
        if i % 7 == 0:
            body = msgspec.json.decode(value)
            del body["latency_ms"]
            held.records[i] = (topic, key, msgspec.json.encode(body))


def _expected(spec: ModelSpec, *held: DeferredProducer) -> dict[Key, LatencySketch]:
    decoder = EventDecoder({spec.name: spec})
    out: dict[Key, LatencySketch] = {}
    for producer in held:
        for _, _, value in producer.records:
            event = decoder.decode_prediction(value)
            key = (event.model_version, spec.window_start(event.event_time))
            out.setdefault(key, LatencySketch()).update([event.latency_ms])
    return out


def _stored(database_url: str) -> dict[Key, LatencySketch]:
    engine = make_engine(database_url)
    wa = WindowAggregate
    out: dict[Key, LatencySketch] = {}
    try:
        with make_session_factory(engine)() as session:
            rows = session.execute(select(wa.model_version, wa.window_start, wa.latency)).all()
    finally:
        engine.dispose()
    for version, start, latency in rows:
        sketch = out.setdefault((version, int(start.timestamp())), LatencySketch())
        if latency is not None:
            sketch.merge(LatencySketch.from_bytes(latency))
    return out


def test_latency_per_version_lands_in_sql_exactly_once_through_kills(
    kafka: TestKafka, pg_url: str, make_config: Any, tmp_path: Any
) -> None:
    # Small polls and frequent flushes: many commit points for the kills to fall between.
    config = make_config(
        pg_url,
        flush_events=200,
        flush_interval="200ms",
        extra_consumer={"max_poll_records": 50},
        models={"wide": wide_model(numerical=4, categorical=1)},
    )
    cfg = load_config(config, env={})
    spec = cfg.model_specs()["wide"]
    topic = cfg.kafka.topics.predictions
    start = time.time() - 3 * 86400
    first, rest = DeferredProducer(), DeferredProducer()
    sent: Counter[tuple[str, str, int]] = produce(
        first, _streams(spec, start, 1), 3000, topic, None
    ).windows
    # Held back until the last run (later in event time, its own ids): no kill can come
    # after the whole stream is in SQL, however fast the machine.
    sent += produce(rest, _streams(spec, start + 3600, 3), 500, topic, None).windows
    _drop_some_latencies(first)
    expected = _expected(spec, first, rest)

    def release(held: DeferredProducer) -> None:
        producer = kafka.producer()
        try:
            held.release(producer)
        finally:
            producer.close()

    release(first)
    result = run_chaos(
        config,
        pg_url,
        sent,
        tmp_path,
        kills=2,
        seed=7,
        held_back=HeldBack(1000, lambda: release(rest)),
    )

    assert result.kills == 2
    assert all(0 < n <= 6000 for n in result.stored_at_kills), result
    assert (result.lost, result.duplicated, result.stored) == (0, 0, 7000), result
    stored = _stored(pg_url)
    assert stored.keys() == expected.keys()
    assert {k: s.count for k, s in stored.items()} == {k: s.count for k, s in expected.items()}
    assert stored == expected
    # Both versions, and the events without a latency left out of every count.
    by_version: Counter[str] = Counter()
    for (version, _), sketch in stored.items():
        by_version[version] += sketch.count
    assert set(by_version) == {"v1", "v2"}
    assert sum(by_version.values()) == 7000 - len(range(0, 6000, 7))
