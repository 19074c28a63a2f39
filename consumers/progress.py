"""How far this replica has read: consumer lag, and which partitions are busy."""

from __future__ import annotations

from dataclasses import dataclass

from kafka import TopicPartition

from consumers.clients import ConsumerClient
from consumers.offsets import OffsetBook
from consumers.stats import IngestStats


@dataclass(frozen=True, slots=True)
class OwnedPartition:
    """One owned partition of any subscribed topic, as far as SQL has it.

    ``committed`` is the next offset stored in SQL (None: nothing stored yet),
    ``position`` the next offset read, ``high`` the broker's high watermark
    (None: not known yet); ``held`` when the loop paused it on purpose, until its
    labels catch up (:meth:`consumers.intake.LabelIntake.hold`).
    """

    topic: str
    partition: int
    committed: int | None
    position: int | None
    high: int | None
    held: bool = False

    @property
    def lag(self) -> int | None:
        """Messages not yet durable in SQL; None when that cannot be told."""
        base = self.committed if self.committed is not None else self.position
        if self.high is None or base is None:
            return None
        return max(self.high - base, 0)

    @property
    def behind(self) -> bool:
        """Events wait to be made durable: some unread or unflushed."""
        unflushed = self.position is not None and self.position != self.committed
        return unflushed or bool(self.lag)


@dataclass(frozen=True, slots=True)
class ConsumerProgress:
    """What this replica knows about the predictions topic, for deciding idleness.

    ``partitions`` are all of the topic's partitions (empty until metadata
    arrives); ``busy`` are the owned ones with events read but not yet flushed,
    or not yet read, or whose end is not known yet. ``owned`` is every owned
    partition of every topic, for telling a stalled consumer from a busy one.
    ``assigned`` is true while the replica holds its group assignment (from the
    assignment until the next revocation): only then are ``busy`` and ``owned``
    complete.
    """

    partitions: frozenset[int] = frozenset()
    busy: frozenset[int] = frozenset()
    owned: tuple[OwnedPartition, ...] = ()
    assigned: bool = False


def survey(
    book: OffsetBook,
    consumer: ConsumerClient,
    topic: str,
    stats: IngestStats,
    assigned: bool = False,
    held: frozenset[TopicPartition] = frozenset(),
) -> ConsumerProgress:
    """Report every owned partition's lag; the predictions ``topic``'s progress.
    ``held`` are the partitions the loop holds back on purpose."""
    busy = set()
    owned = []
    for owned_topic, partition in book.owned():
        key = (owned_topic, partition)
        position = book.position(key)
        high = consumer.highwater(TopicPartition(owned_topic, partition))
        if high is not None and position is not None:
            stats.lag(owned_topic, partition, max(high - position, 0))
        busy_here = high is None or position is None or position < high
        if busy_here and owned_topic == topic:
            busy.add(partition)
        waits = TopicPartition(owned_topic, partition) in held
        owned.append(
            OwnedPartition(owned_topic, partition, book.stored(key), position, high, waits)
        )
    busy.update(a.partition for a in book.pending() if a.topic == topic)
    known = consumer.partitions_for_topic(topic) or set()
    return ConsumerProgress(frozenset(known), frozenset(busy), tuple(owned), assigned)
