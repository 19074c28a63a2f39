"""Where each owned partition continues, with SQL as the source of truth.

On assignment the consumer seeks every new partition to the offset stored in
SQL; after a compare-and-set failed, the partitions in conflict go back to what
SQL holds, their buffers dropped. With a labels topic, partition p of both
topics moves together, because the join state of p is stored with both.
Kafka's own committed offsets are written only for lag tooling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from consumers.checkpoint import CheckpointStore
from consumers.clients import Clock, ConsumerClient
from consumers.offsets import OffsetBook
from consumers.retry import Backoff, Dependency, Health
from consumers.stats import IngestStats
from db.errors import OffsetConflict, StoreError
from db.repositories import OffsetAdvance, StoredOffset

log = logging.getLogger(__name__)
DropBuffers = Callable[[str, set[int]], None]


class Stopping(Exception):
    """Shutdown was asked for while an assignment waited for the database."""


class Positions:
    def __init__(
        self,
        consumer: ConsumerClient,
        store: CheckpointStore,
        book: OffsetBook,
        *,
        start_from_earliest: bool,
        max_backoff: float,
        health: Health,
        stats: IngestStats,
        clock: Clock,
    ) -> None:
        self.consumer, self.store, self.book = consumer, store, book
        self._earliest = start_from_earliest
        self._max_backoff = max_backoff
        self._health, self._stats, self._clock = health, stats, clock

    def assign(
        self, assigned: Sequence[TopicPartition], drop: DropBuffers, stop: threading.Event
    ) -> None:
        """Track and seek the newly assigned partitions from their stored offsets."""
        by_topic: dict[str, list[int]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        for topic, partitions in by_topic.items():
            stored = self._load_offsets(topic, partitions, stop)
            drop(topic, set(partitions))
            for p in partitions:
                self.book.assign((topic, p), stored.get(p))
                self.seek_start(TopicPartition(topic, p), stored.get(p))

    def _load_offsets(
        self, topic: str, partitions: list[int], stop: threading.Event
    ) -> dict[int, StoredOffset]:
        backoff = Backoff(self._max_backoff)
        while not stop.is_set():
            try:
                stored = self.store.load(topic, partitions)
                self._health.up(Dependency.STORE)
                return stored
            except StoreError as exc:
                if not exc.retriable:
                    raise
                self._health.down(Dependency.STORE)
                wait = backoff.next()
                log.warning("cannot read stored offsets, retrying in %.1fs: %s", wait, exc)
                self._clock.wait(stop, wait)
        raise Stopping("stopped while waiting for the database to read stored offsets")

    def resolve_conflict(
        self,
        conflict: OffsetConflict,
        advances: list[OffsetAdvance],
        linked: tuple[str, ...] | None,
        drop: DropBuffers,
    ) -> None:
        """Reconcile with SQL after a compare-and-set failed for some partitions.

        Stored == our position means an earlier attempt did commit (its
        acknowledgement was lost); anything else means another consumer moved
        the partition. Either way our buffer for it is dropped and we continue
        from what SQL holds. ``linked`` topics move their partition p together.
        """
        ours = {(a.topic, a.partition): a for a in advances}
        recovered: list[OffsetAdvance] = []
        by_topic: dict[str, list[int]] = {}
        for topic, partition in conflict.partitions:
            by_topic.setdefault(topic, []).append(partition)
        if linked is not None:
            numbers = sorted({p for _, p in conflict.partitions})
            by_topic = {t: numbers for t in linked}
        for topic, partitions in by_topic.items():
            stored = self.store.load(topic, partitions)
            drop(topic, set(partitions))
            for p in partitions:
                mine = ours.get((topic, p))
                if mine is not None and p in stored and stored[p].next_offset == mine.next_offset:
                    recovered.append(mine)
                self._restart_from(topic, p, stored.get(p))
        landed = {(a.topic, a.partition) for a in recovered}
        moved = sum(1 for tp in conflict.partitions if tp not in landed)
        if moved:
            self._stats.offset_conflicts(moved)
            log.warning("%s; continuing from the stored offsets", conflict)
        if recovered:
            self.commit_kafka(recovered)

    def _restart_from(self, topic: str, partition: int, stored: StoredOffset | None) -> None:
        key = (topic, partition)
        if self.book.owns(key):
            already = self.book.position(key)
            self.book.reset(key, stored)
            if stored is None or stored.next_offset != already:
                self.seek_start(TopicPartition(topic, partition), stored)

    def seek_start(self, tp: TopicPartition, stored: StoredOffset | None) -> None:
        """Position ``tp`` where SQL says processing continues."""
        if stored is not None:
            self.consumer.seek(tp, stored.next_offset)
        elif self._earliest:
            self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek_to_end(tp)

    def commit_kafka(self, advances: Sequence[Any]) -> None:
        offsets = {
            TopicPartition(a.topic, a.partition): OffsetAndMetadata(a.next_offset, "", -1)
            for a in advances
        }
        try:
            self.consumer.commit_async(offsets)
        except KafkaError as exc:
            log.debug("kafka offset commit skipped (lag tooling only): %s", exc)


class Rebalanced(Protocol):
    """What a rebalance is reported to (the ingest loop)."""

    def on_revoked(self, revoked: list[TopicPartition]) -> None: ...

    def on_assigned(self, assigned: list[TopicPartition]) -> None: ...


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """kafka-python's listener, handing each rebalance to ``target``."""

    def __init__(self, target: Rebalanced) -> None:
        self._target = target

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._target.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._target.on_assigned(assigned)
