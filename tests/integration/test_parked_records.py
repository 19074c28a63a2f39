"""A partition paused while its records wait in line is read again once resumed.

kafka-python 3.0.12 parks such a partition's records and restores them only while
its fetcher's in-line slot is ``None``; once another partition's records were
read the slot holds them drained, and the parked partition is never fetched
again (see :func:`service.kafka_clients.restore_parked_records`). The loop gets
there when SQL is down: it pauses everything and polls on, and a rebalance may
hand it partitions that are not paused. Here the state is made by construction:
two partitions of 100 records, polls of 10, the first partition paused with 90
in line, the other read to its end, then the first resumed.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from service.kafka_clients import restore_parked_records
from tests.harness.kafka import TestKafka

pytestmark = pytest.mark.kafka

RECORDS = 100
_names = itertools.count()


@pytest.fixture(scope="module")
def two_partitions(kafka: TestKafka) -> str:
    topic = f"parked-{os.getpid()}-{next(_names)}"
    kafka.create_topic(topic, 2)
    producer = kafka.producer()
    for partition in (0, 1):
        for i in range(RECORDS):
            producer.send(topic, value=f"{partition}-{i}".encode(), partition=partition)
    producer.flush()
    producer.close()
    return topic


def read_after_resume(kafka: TestKafka, topic: str, mended: bool) -> int:
    """How many of the paused partition's records a resumed consumer reads in 10 s."""
    consumer = KafkaConsumer(**kafka.client_options, enable_auto_commit=False, max_poll_records=10)
    if mended:
        restore_parked_records(consumer)
    try:
        parts = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        first = _poll_until(consumer, bool)
        (paused,) = first  # one partition's ten records: the rest of its fetch is in line
        other = next(p for p in parts if p != paused)
        consumer.pause(paused)
        got = {other: 0}
        _poll_until(consumer, lambda batch: _count(batch, got) and got[other] == RECORDS)
        fetcher: Any = consumer._fetcher
        assert paused in fetcher._paused_partition_records
        assert fetcher._next_partition_records is not None
        consumer.resume(paused)
        got[paused] = 0
        deadline = time.monotonic() + 10
        while got[paused] < RECORDS - 10 and time.monotonic() < deadline:
            _count(consumer.poll(timeout_ms=200), got)
        return got[paused]
    finally:
        consumer.close()


def _poll_until(consumer: KafkaConsumer, done: Any) -> dict[Any, list[Any]]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500)
        if done(batch):
            return batch  # type: ignore[no-any-return]
    raise AssertionError("the broker did not deliver the records in 30 s")


def _count(batch: dict[Any, list[Any]], got: dict[Any, int]) -> bool:
    for tp, records in batch.items():
        got[tp] = got.get(tp, 0) + len(records)
    return True


def test_kafka_python_leaves_such_a_partition_stalled(
    kafka: TestKafka, two_partitions: str
) -> None:
    # The premise of the mend: if this fails, kafka-python restores parked records by
    # itself now, and restore_parked_records (and the exact pin) can go.
    assert read_after_resume(kafka, two_partitions, mended=False) == 0


def test_the_mended_consumer_reads_the_resumed_partition_to_its_end(
    kafka: TestKafka, two_partitions: str
) -> None:
    assert read_after_resume(kafka, two_partitions, mended=True) == RECORDS - 10
