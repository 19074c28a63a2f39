"""What the benchmarks share: a broker (the harness's own unless one is given) and data."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from consumers.synthetic import SyntheticPlan, SyntheticStream, produce  # noqa: E402
from drift.schema import ModelSpec  # noqa: E402
from service.config import KafkaConfig  # noqa: E402
from service.kafka_clients import consumer_options  # noqa: E402
from tests.harness.kafka import TestKafka  # noqa: E402


@contextmanager
def broker() -> Iterator[TestKafka]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker for this run only."""
    with tempfile.TemporaryDirectory(prefix="driftwatch-bench-") as tmp:
        if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            print("starting a local Kafka broker ...", flush=True)
        kafka = TestKafka(Path(tmp) / "kafka")
        try:
            yield kafka
        finally:
            kafka.close()


def bare_consumer(kafka: TestKafka, topic: str) -> KafkaConsumer:
    """A consumer outside any group, on every partition of ``topic`` from the beginning."""
    opts = consumer_options(KafkaConfig(bootstrap_servers=[kafka.bootstrap_servers]), "earliest")
    opts.update(kafka.client_options, group_id=None)
    consumer = KafkaConsumer(**opts)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return consumer


def fill_topic(
    kafka: TestKafka, topic: str, spec: ModelSpec, count: int, partitions: int = 3
) -> Any:
    """Produce ``count`` synthetic events for ``spec``; return the producer's report."""
    kafka.create_topic(topic, partitions)
    producer: KafkaProducer = kafka.producer(batch_size=256 * 1024, linger_ms=20)
    plan = SyntheticPlan(model=spec, rate=1000.0, start=time.time() - count / 1000.0 - 60)
    started = time.perf_counter()
    try:
        report = produce(producer, [SyntheticStream(plan)], count, topic, None)
    finally:
        producer.close()
    print(f"produced {count} events to {topic} in {time.perf_counter() - started:.1f}s", flush=True)
    return report
