"""One interface over the harness's own broker and an externally provided one."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from service.dev.localkafka import API_VERSION, LocalKafka


class TestKafka:
    """A broker for tests: ``KAFKA_BOOTSTRAP_SERVERS`` if set, else a local 0.9 broker.

    ``local_only`` starts a local broker whatever the environment says, for the
    tests that must stop and start their broker.
    """

    __test__ = False

    def __init__(self, workdir: Path, *, local_only: bool = False) -> None:
        external = None if local_only else os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        self.local: LocalKafka | None = None
        if external:
            self.bootstrap_servers = external
            self.api_version: tuple[int, ...] | None = None
        else:
            self.local = LocalKafka(workdir=workdir, partitions=3)
            self.local.start()
            self.bootstrap_servers = self.local.bootstrap_servers
            self.api_version = API_VERSION

    @property
    def client_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers}
        if self.api_version is not None:
            options["api_version"] = self.api_version
        return options

    def create_topic(self, name: str, partitions: int) -> None:
        self.create_topics({name: partitions})

    def create_topics(self, topics: dict[str, int]) -> None:
        """Create topics (name -> partitions) in one go; existing ones are fine."""
        if self.local is not None:
            self.local.create_topics(topics)
            return
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            for name, partitions in topics.items():
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics([NewTopic(name, partitions, 1)])
        finally:
            admin.close()

    def producer(self, **extra: Any) -> KafkaProducer:
        options: dict[str, Any] = {"acks": "all", "linger_ms": 5, **self.client_options, **extra}
        if self.api_version is not None and self.api_version < (0, 11):
            options.setdefault("enable_idempotence", False)  # the old broker cannot
        return KafkaProducer(**options)

    def read_all(self, topic: str, timeout: float = 20.0) -> list[Any]:
        """Every record of ``topic`` up to its current end, in no group."""
        consumer = KafkaConsumer(**self.client_options, enable_auto_commit=False)
        try:
            deadline = time.monotonic() + timeout
            parts = None
            while not parts and time.monotonic() < deadline:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    time.sleep(0.2)
            if not parts:
                return []
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            records: list[Any] = []
            while time.monotonic() < deadline and any(
                consumer.position(tp) < end[tp] for tp in tps
            ):
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend(batch)
            return records
        finally:
            consumer.close(autocommit=False)

    def close(self) -> None:
        if self.local is not None:
            self.local.stop()
