"""How far this replica has read: consumer lag, and which partitions are busy."""

from __future__ import annotations

from dataclasses import dataclass

from kafka import TopicPartition

from consumers.clients import ConsumerClient
from consumers.offsets import OffsetBook
from consumers.stats import IngestStats


@dataclass(frozen=True, slots=True)
class ConsumerProgress:
    """What this replica knows about the predictions topic, for deciding idleness.

    ``partitions`` are all of the topic's partitions (empty until metadata
    arrives); ``busy`` are the owned ones with events read but not yet flushed,
    or not yet read, or whose end is not known yet.
    """

    partitions: frozenset[int] = frozenset()
    busy: frozenset[int] = frozenset()


def survey(
    book: OffsetBook, consumer: ConsumerClient, topic: str, stats: IngestStats
) -> ConsumerProgress:
    """Report every owned partition's lag; the predictions ``topic``'s progress."""
    busy = set()
    for owned_topic, partition in book.owned():
        position = book.position((owned_topic, partition))
        high = consumer.highwater(TopicPartition(owned_topic, partition))
        if high is not None and position is not None:
            stats.lag(owned_topic, partition, max(high - position, 0))
        busy_here = high is None or position is None or position < high
        if busy_here and owned_topic == topic:
            busy.add(partition)
    busy.update(a.partition for a in book.pending() if a.topic == topic)
    known = consumer.partitions_for_topic(topic) or set()
    return ConsumerProgress(frozenset(known), frozenset(busy))
