"""What the benchmarks share: a broker (the harness's own unless one is given) and data."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402

from consumers.stats import NullStats  # noqa: E402
from consumers.synthetic import SyntheticPlan, SyntheticStream, produce  # noqa: E402
from drift.schema import ModelSpec  # noqa: E402
from service.config import KafkaConfig  # noqa: E402
from service.kafka_clients import consumer_options  # noqa: E402
from tests.harness.kafka import TestKafka  # noqa: E402

API_VERSION_ENV = "DRIFTWATCH_KAFKA__API_VERSION"


@contextmanager
def broker() -> Iterator[TestKafka]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local broker for this run only.

    kafka-python cannot probe a broker older than 0.10, so an external one of
    those (e.g. the test session's 0.9 broker) needs its version given, in the
    variable that sets ``kafka.api_version`` for the service: ``"0.9"``.
    """
    with tempfile.TemporaryDirectory(prefix="driftwatch-bench-") as tmp:
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not external:
            print("starting a local Kafka broker ...", flush=True)
        kafka = TestKafka(Path(tmp) / "kafka")
        version = os.environ.get(API_VERSION_ENV)
        if external and version:
            kafka.api_version = KafkaConfig.model_validate(
                {"bootstrap_servers": [external], "api_version": version}
            ).api_version
        try:
            yield kafka
        finally:
            kafka.close()


def broker_env(kafka: TestKafka) -> dict[str, str]:
    """This process's environment, pointing a child benchmark process at ``kafka``."""
    env = dict(os.environ)
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers
    env.pop(API_VERSION_ENV, None)
    if kafka.api_version is not None:
        env[API_VERSION_ENV] = ".".join(str(part) for part in kafka.api_version)
    return env


def create_topic(kafka: TestKafka, name: str, partitions: int) -> None:
    """Create ``name``, also on an external broker without the CreateTopics API (< 0.10.1).

    Such a broker creates a topic on the first metadata request naming it
    (``auto.create.topics.enable``, as the harness's broker has), with its default
    partition count, which must then be the one asked for.
    """
    version = kafka.api_version
    if kafka.local is not None or version is None or version >= (0, 10, 1):
        kafka.create_topic(name, partitions)
        return
    producer = kafka.producer()
    try:
        created = len(producer.partitions_for(name))
    finally:
        producer.close()
    if created != partitions:
        raise RuntimeError(
            f"the broker at {kafka.bootstrap_servers} created topic {name!r} with {created} "
            f"partitions, this benchmark needs {partitions} (num.partitions={partitions})"
        )


class Progress(NullStats):
    """The ingestion loop's stats hook, counting the predictions it has read.

    Every read prediction is reported as consumed, late or invalid; once
    ``target`` are, ``done`` is set and the loop flushes and stops. ``each``
    sees the running count after every report (a batch, or one window of it),
    and ``first`` is when the first report came (``clock``; ``first_cpu`` the
    process CPU time then), so a run is timed from its first record as a bare
    consumer is.
    """

    def __init__(
        self,
        target: int,
        done: threading.Event,
        each: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.target, self.done, self.each, self.clock = target, done, each, clock
        self.read = 0
        self.first: float | None = None
        self.first_cpu = 0.0

    def _add(self, n: int) -> None:
        if self.first is None:
            self.first, self.first_cpu = self.clock(), time.process_time()
        self.read += n
        if self.each is not None:
            self.each(self.read)
        if self.read >= self.target:
            self.done.set()

    def consumed(self, model: str, n: int) -> None:
        self._add(n)

    def late(self, model: str, n: int) -> None:
        self._add(n)

    def invalid(self, reason: str) -> None:
        self._add(1)


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
    create_topic(kafka, topic, partitions)
    producer: KafkaProducer = kafka.producer(batch_size=256 * 1024, linger_ms=20)
    plan = SyntheticPlan(model=spec, rate=1000.0, start=time.time() - count / 1000.0 - 60)
    started = time.perf_counter()
    try:
        report = produce(producer, [SyntheticStream(plan)], count, topic, None)
    finally:
        producer.close()
    print(f"produced {count} events to {topic} in {time.perf_counter() - started:.1f}s", flush=True)
    return report


_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """This process's resident set size now, in MiB."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE / 2**20
