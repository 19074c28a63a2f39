"""Builds kafka-python clients from validated configuration."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError

from consumers.clients import ConsumerClient
from service.config import KafkaConfig
from service.errors import ServiceError

log = logging.getLogger(__name__)


def _common(cfg: KafkaConfig) -> dict[str, Any]:
    options: dict[str, Any] = {"bootstrap_servers": cfg.bootstrap_servers, **cfg.security}
    if cfg.api_version is not None:
        options["api_version"] = cfg.api_version
    return options


def consumer_options(cfg: KafkaConfig, start_from: str) -> dict[str, Any]:
    return {
        # Batches large enough to amortise per-poll overhead on the hot path.
        "max_poll_records": 5000,
        "fetch_max_bytes": 16 * 1024 * 1024,
        # About four thousand events, so a fetch still fills a poll; kafka-python
        # holds several at once, and at 8 MiB they came and went as 40-74 MB of
        # the resident set (bench/memory.py), at 2 MiB as 16-26 MB. 1 MiB cost
        # ingest throughput.
        "max_partition_fetch_bytes": 2 * 1024 * 1024,
        **cfg.consumer,
        **_common(cfg),
        "group_id": cfg.group_id,
        # Partition p of the predictions and the labels topic go to the same replica,
        # which the label join relies on (both topics keyed by event_id, same count).
        "partition_assignment_strategy": [RangePartitionAssignor],
        # Offsets live in SQL with the aggregates; Kafka's are written for lag tools only.
        "enable_auto_commit": False,
        "auto_offset_reset": start_from,
    }


def wait_for_brokers(cfg: KafkaConfig) -> None:
    """Fail start-up loudly when no bootstrap server accepts connections in time.

    kafka-python retries unreachable brokers forever in the background, which
    would leave a misconfigured service running and consuming nothing.
    """
    deadline = time.monotonic() + cfg.startup_timeout
    last: OSError | None = None
    while True:
        for server in cfg.bootstrap_servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                    return
            except (OSError, ValueError) as exc:
                last = exc if isinstance(exc, OSError) else OSError(str(exc))
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"cannot reach Kafka at {','.join(cfg.bootstrap_servers)} within "
                f"kafka.startup_timeout ({cfg.startup_timeout:g}s): {last}"
            )
        time.sleep(1.0)


def make_consumer(cfg: KafkaConfig, start_from: str) -> ConsumerClient:
    try:
        consumer = KafkaConsumer(**consumer_options(cfg, start_from))
        restore_parked_records(consumer)
        return cast(ConsumerClient, consumer)
    except KafkaError as exc:
        raise ServiceError(
            f"cannot connect to Kafka at {','.join(cfg.bootstrap_servers)}: {exc}"
        ) from exc


def restore_parked_records(consumer: KafkaConsumer) -> None:
    """Mend kafka-python 3.0.12's restore of a resumed partition's parked records.

    A partition paused while its parsed records wait in the fetcher's in-line slot
    is parked (KAFKA-7548) and left out of every fetch until the records are
    restored, which happens only when the slot is ``None``. Once another
    partition's records were consumed the slot holds them drained, which is
    falsy but not ``None``: the parked partition is then never read again. The
    loop pauses every partition while SQL is down and polls to keep its group
    membership; a rebalance during that wait hands it new, unpaused partitions
    whose records fill the slot, and the partitions parked before stay stalled
    after the outage. A drained slot means "nothing in line" everywhere else in
    the fetcher, so emptying it before each call is what the restore expects.
    ``tests/integration/test_parked_records.py`` reproduces the stall against the
    broker; the version is pinned because this reaches into the fetcher.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    original = getattr(fetcher, "fetched_records", None)
    if fetcher is None or original is None or not hasattr(fetcher, "_next_partition_records"):
        return

    def fetched_records(*args: Any, **kwargs: Any) -> Any:
        in_line = fetcher._next_partition_records
        if in_line is not None and not in_line:
            fetcher._next_partition_records = None
        return original(*args, **kwargs)

    fetcher.fetched_records = fetched_records


class BrokerEnds:
    """Partitions' end offsets as the broker has them, asked by a client of its own.

    For the stall watch: a consumer that stopped fetching keeps the high watermark
    of its last fetch, so by its own account nothing waits and no stall shows. This
    client is in no group and only lists offsets (a few milliseconds per call); it
    is built at the first call, and a call that fails or outlasts ``timeout``
    returns nothing (the watch then judges by the consumer's own account).
    """

    def __init__(self, cfg: KafkaConfig, timeout: float = 5.0) -> None:
        self._cfg, self._timeout_ms = cfg, int(timeout * 1000)
        self._client: KafkaConsumer | None = None
        self._failing = False
        # A watch tick in flight at shutdown finishes (within timeout) before the close.
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, partitions: Sequence[tuple[str, int]]) -> Mapping[tuple[str, int], int]:
        with self._lock:
            if not partitions or self._closed:
                return {}
            return self._read(partitions)

    def _read(self, partitions: Sequence[tuple[str, int]]) -> Mapping[tuple[str, int], int]:
        try:
            if self._client is None:
                self._client = KafkaConsumer(**_common(self._cfg), enable_auto_commit=False)
            wanted = [TopicPartition(t, p) for t, p in partitions]
            ends = self._client.end_offsets(wanted, timeout_ms=self._timeout_ms)
        except KafkaError as exc:
            if not self._failing:
                log.warning("cannot read the partitions' end offsets from Kafka: %s", exc)
            self._failing = True
            return {}
        if self._failing:
            log.info("reading the partitions' end offsets from Kafka again")
        self._failing = False
        return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._client is not None:
                self._client.close(autocommit=False)
                self._client = None


def producer_options(cfg: KafkaConfig) -> dict[str, Any]:
    return {
        "acks": "all",
        "linger_ms": 20,
        # Creating a producer blocks until a broker answers (30 s by default); the
        # dead-letter producer is created inside the flush's retry loop, whose
        # shutdown budget is 8 s, so a dead broker must not hold it longer.
        "bootstrap_timeout_ms": 5000,
        **cfg.producer,
        **_common(cfg),
    }


def dead_letter_producer(cfg: KafkaConfig) -> KafkaProducer:
    """The dead-letter topic's producer; raises KafkaError when it cannot be created.

    Not translated here: :class:`consumers.dlq.DeadLetterPublisher` takes
    KafkaError from its factory as a retriable failure, which a service error
    would not be.
    """
    options = producer_options(cfg)
    # A send waits this long for the topic's metadata (a topic missing, a broker away)
    # before it fails: 60 s by default, which the ingestion loop would wait per send.
    options.setdefault("max_block_ms", 5000)
    return KafkaProducer(**options)


def make_producer(cfg: KafkaConfig) -> Any:
    try:
        return KafkaProducer(**producer_options(cfg))
    except KafkaError as exc:
        raise ServiceError(
            f"cannot connect to Kafka at {','.join(cfg.bootstrap_servers)}: {exc}"
        ) from exc


def check_copartitioned(consumer: ConsumerClient, predictions: str, labels: str) -> None:
    """Fail start-up unless the labels topic exists with the predictions topic's partition count.

    The label join finds a label's prediction on the same partition number,
    which holds only when both topics are keyed by event_id and have as many
    partitions. A predictions topic that does not exist yet is not checked.
    """
    try:
        pred_parts = consumer.partitions_for_topic(predictions) or set()
        label_parts = consumer.partitions_for_topic(labels) or set()
    except KafkaError as exc:
        raise ServiceError(
            f"cannot read the partitions of {predictions!r} and {labels!r}: {exc}"
        ) from exc
    if not label_parts:
        raise ServiceError(
            f"kafka.topics.labels: topic {labels!r} does not exist; create it with "
            f"{len(pred_parts) or 'as many'} partitions as {predictions!r}, keyed by event_id, "
            "or drop the labels section of the models that get no labels (labels are opt-in)"
        )
    if pred_parts and len(pred_parts) != len(label_parts):
        raise ServiceError(
            f"kafka.topics: {predictions!r} has {len(pred_parts)} partitions and {labels!r} "
            f"has {len(label_parts)}; the label join needs the same count on both (keyed by "
            "event_id)"
        )
