"""The ingestion loop: poll, decode, aggregate, and flush exactly once.

Exactly-once effect without Kafka transactions: the aggregates and the next
offsets of every owned partition are written in one SQL transaction, and on
every assignment the consumer seeks to the offsets stored in SQL. Kafka's own
committed offsets are written afterwards, only for lag tooling. Whatever the
moment of a crash, the state in SQL is that of some prefix of every partition,
and processing resumes exactly after it.

While the database is unreachable the loop pauses its partitions, keeps its
group membership by polling, and retries the same flush with backoff.

With labels, the loop subscribes to the labels topic too, in the same group
and with the range assignor, so partition p of both topics (keyed by
event_id, same partition count) belongs to the same replica. The join state of
p is written in the flush transaction with both topics' offsets, and whatever
moves one topic's p back to SQL (a conflict, a revocation) moves both. The
label side itself (decoding, buffering, the join work of a flush) is
:class:`consumers.intake.LabelIntake`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, TopicPartition
from kafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaError,
)
from kafka.structs import OffsetAndMetadata

from consumers.checkpoint import CheckpointStore
from consumers.dlq import DeadLetterPublisher, envelope
from consumers.errors import ConsumerError, InvalidEvent, from_the_future
from consumers.events import DecodedBatch, EventDecoder
from consumers.intake import LabelIntake
from consumers.join import JoinCounts, PartitionObserver
from consumers.labels import LabelSpec
from consumers.offsets import OffsetBook
from consumers.stats import IngestStats
from consumers.window import WindowAccumulator
from db.detectors import Alarm
from db.errors import OffsetConflict, StoreError
from db.repositories import OffsetAdvance, StoredOffset
from drift.schema import ModelSpec

log = logging.getLogger(__name__)
_TRANSIENT_KAFKA_ERRORS = (CommitFailedError, KafkaConnectionError)


@dataclass(frozen=True, slots=True)
class IngestSettings:
    topic: str
    labels_topic: str | None = None  # None: no label join
    flush_events: int = 20_000
    flush_interval: float = 2.0
    max_clock_skew: float = 3600.0
    start_from_earliest: bool = True
    poll_timeout: float = 0.2
    max_backoff: float = 10.0
    shutdown_budget: float = 8.0


@dataclass(frozen=True, slots=True)
class ConsumerProgress:
    """What this replica knows about the predictions topic, for deciding idleness.

    ``partitions`` are all of the topic's partitions (empty until metadata
    arrives); ``busy`` are the owned ones with events read but not yet flushed,
    or not yet read, or whose end is not known yet.
    """

    partitions: frozenset[int] = frozenset()
    busy: frozenset[int] = frozenset()


class _Stopping(Exception):
    """Shutdown was asked for while an assignment waited for the database."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: IngestLoop) -> None:
        self._loop = loop

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._loop.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._loop.on_assigned(assigned)


class IngestLoop:
    def __init__(
        self,
        consumer: Any,
        decoder: EventDecoder,
        store: CheckpointStore,
        dead_letters: DeadLetterPublisher,
        settings: IngestSettings,
        stats: IngestStats,
        clock: Callable[[], float] = time.time,
        label_specs: Mapping[str, LabelSpec] | None = None,
        join_observer: PartitionObserver | None = None,
    ) -> None:
        self.consumer = consumer
        self.decoder = decoder
        self.store = store
        self.dlq = dead_letters
        self.settings = settings
        self.stats = stats
        self.clock = clock
        self.book = OffsetBook()
        self.acc = WindowAccumulator(decoder.codecs)
        self.labels = LabelIntake(
            settings.labels_topic,
            label_specs,
            stats,
            settings.max_clock_skew,
            self._dead_letter,
            join_observer,
        )
        self._stop = threading.Event()
        self._last_flush = clock()
        self._last_lag = 0.0
        self._kafka_ok = True
        self._store_ok = True
        self._kafka_backoff = 0.5
        self._new_specs: Mapping[str, ModelSpec] | None = None
        # Replaced whole (never mutated), so other threads may read it without a lock.
        self.progress = ConsumerProgress()

    def replace_models(self, specs: Mapping[str, ModelSpec]) -> None:
        """Switch to new model specs (e.g. a new profile's bins) at the next iteration.

        Safe from another thread: the loop flushes what it holds under the old
        specs first. Windows then get rows of the new layout beside the old.
        """
        self._new_specs = dict(specs)

    def _apply_new_specs(self) -> None:
        specs, self._new_specs = self._new_specs, None
        if specs is None:
            return
        self._flush_with_retry(deadline=None)
        self.decoder = EventDecoder(specs)
        self.acc = WindowAccumulator(self.decoder.codecs)
        log.info("model specs replaced: %s", ", ".join(sorted(specs)))

    # -- main loop ---------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until ``stop`` is set, then flush what is buffered and close."""
        self._stop = stop or threading.Event()
        topics = [self.settings.topic]
        if self.labels.topic is not None:
            topics.append(self.labels.topic)
        self.consumer.subscribe(topics, listener=_Rebalance(self))
        try:
            while not self._stop.is_set():
                if self._new_specs is not None:
                    self._apply_new_specs()
                batch = self._poll(int(self.settings.poll_timeout * 1000))
                if batch:
                    self._process(batch)
                if self._flush_due():
                    self._flush_with_retry(deadline=None)
                self._report_lag()
            self._flush_with_retry(deadline=self.clock() + self.settings.shutdown_budget)
        except _Stopping as exc:
            log.warning("%s; nothing was lost, unflushed events will be read again", exc)
        finally:
            try:
                self.consumer.close(autocommit=False)
            except KafkaError as exc:
                log.warning("kafka consumer did not close cleanly: %s", exc)

    def _poll(self, timeout_ms: int) -> Mapping[TopicPartition, list[Any]]:
        """Poll, riding out broker outages: the client reconnects on the next call."""
        try:
            batch: Mapping[TopicPartition, list[Any]] = self.consumer.poll(timeout_ms=timeout_ms)
        except KafkaError as exc:
            if isinstance(exc.__cause__, _Stopping):
                # Shutdown reached a rebalance callback, which kafka-python re-raised.
                raise exc.__cause__ from None
            if not (exc.retriable or isinstance(exc, _TRANSIENT_KAFKA_ERRORS)):
                raise ConsumerError(f"kafka consumer failed: {exc}") from exc
            if self._kafka_ok:
                log.warning("kafka unreachable, retrying: %s", exc)
            self._set_health(kafka=False)
            self._stop.wait(self._kafka_backoff)
            self._kafka_backoff = min(self._kafka_backoff * 2, self.settings.max_backoff)
            return {}
        if not self._kafka_ok:
            log.info("kafka reachable again")
        self._kafka_backoff = 0.5
        self._set_health(kafka=True)
        return batch

    def _set_health(self, *, kafka: bool | None = None, store: bool | None = None) -> None:
        if kafka is not None:
            self._kafka_ok = kafka
        if store is not None:
            self._store_ok = store
        self.stats.healthy(self._kafka_ok and self._store_ok)

    def _process(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        limit = self.clock() + self.settings.max_clock_skew
        for tp, records in batch.items():
            key = (tp.topic, tp.partition)
            if not self.book.owns(key):
                continue  # revoked while this batch was in flight
            if tp.topic == self.labels.topic:
                wm = self.labels.read(
                    self.decoder, tp.partition, records, self.book.watermark(key), limit
                )
                self.book.advance(key, records[-1].offset + 1, wm)
                continue
            decoded = self.decoder.decode_batch([r.value for r in records])
            if decoded.times and max(decoded.times) > limit:
                self._reject_future(decoded, limit)
            for index, exc in sorted(decoded.invalid, key=lambda pair: pair[0]):
                self._dead_letter(records[index], exc)
            watermark = self.acc.add_partition_batch(
                tp.partition,
                decoded.events,
                self.book.watermark(key),
                self.stats.late,
                times=decoded.times,
                on_consumed=self.stats.consumed,
                on_accepted=self.labels.prediction_hook(tp.partition),
            )
            self.book.advance(key, records[-1].offset + 1, watermark)

    def _reject_future(self, decoded: DecodedBatch, limit: float) -> None:
        """Move events stamped beyond the clock skew allowance to the invalid list."""
        positions = _valid_positions(len(decoded.events) + len(decoded.invalid), decoded)
        error = from_the_future(self.settings.max_clock_skew)
        kept: list[tuple[Any, float]] = []
        for position, event, t in zip(positions, decoded.events, decoded.times, strict=True):
            if t > limit:
                decoded.invalid.append((position, error))
            else:
                kept.append((event, t))
        decoded.events = [event for event, _ in kept]
        decoded.times = [t for _, t in kept]

    def _dead_letter(self, rec: Any, exc: InvalidEvent) -> None:
        self.dlq.publish(
            rec.key,
            envelope(
                str(exc), rec.topic, rec.partition, rec.offset, rec.key, rec.value, self.clock()
            ),
        )
        self.stats.invalid(exc.kind.value)

    # -- flushing ----------------------------------------------------------
    def _flush_due(self) -> bool:
        if self.acc.events + self.labels.count >= self.settings.flush_events:
            return True
        return self.clock() - self._last_flush >= self.settings.flush_interval

    def flush_once(self) -> None:
        """Make buffered work durable: dead letters first, then one SQL transaction."""
        self._last_flush = self.clock()
        advances = self.book.pending()
        if not advances:
            return
        started = time.perf_counter()
        self.dlq.confirm(timeout=10.0)
        events = self.acc.events
        windows = {m: c.spec.window_seconds for m, c in self.decoder.codecs.items()}
        join, fences = self.labels.flush_work(advances, self.book, self.settings.topic, windows)
        try:
            if join is None:
                self.store.commit(advances, self.acc.deltas)
                counts = JoinCounts()
            else:
                counts = self.store.commit(advances, self.acc.deltas, join, fences)
        except OffsetConflict as conflict:
            self._resolve_conflict(conflict, advances)
            return self.flush_once()
        self.acc.take()
        self.labels.committed()
        self.book.confirm(advances)
        self.stats.flushed(time.perf_counter() - started, events)
        for (model, outcome), n in counts.labels.items():
            self.stats.labels(model, outcome, n)
        for model, n in counts.unlabeled.items():
            self.stats.unlabeled(model, n)
        self._report_alarms(counts.alarms)
        self._commit_kafka(advances)

    def _report_alarms(self, alarms: list[Alarm]) -> None:
        """Count and log the concept-drift alarms of a committed flush."""
        for a in alarms:
            self.stats.alarms(a.model, a.model_version, a.detector, 1)
            log.warning("concept drift alarm: %s", a.describe())

    def _flush_with_retry(self, deadline: float | None) -> bool:
        """Flush, retrying retriable failures with backoff until done or ``deadline``."""
        backoff = 0.5
        # Inside a rebalance callback (deadline set) polling again is not allowed.
        may_poll = deadline is None
        try:
            while True:
                try:
                    self.flush_once()
                    self._set_health(store=True)
                    return True
                except (StoreError, ConsumerError) as exc:
                    if not exc.retriable:
                        raise
                    self._set_health(store=False)
                    self.stats.flush_failed(type(exc).__name__)
                    log.warning("flush failed, retrying in %.1fs: %s", backoff, exc)
                if deadline is not None and self.clock() + backoff > deadline:
                    log.error("giving up flushing; unflushed events will be read again")
                    return False
                self._wait(backoff, may_poll)
                backoff = min(backoff * 2, self.settings.max_backoff)
        finally:
            if may_poll:
                self.consumer.resume(*self.consumer.assignment())

    def _wait(self, seconds: float, may_poll: bool) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if not may_poll or self._stop.is_set():
                time.sleep(min(left, 0.1))
                continue
            # Paused partitions fetch nothing; polling keeps heartbeats and rebalances
            # going. A rebalance may hand us new, unpaused partitions, so pause again
            # each time and process whatever such a poll returned rather than skip it.
            self.consumer.pause(*self.consumer.assignment())
            batch = self._poll(int(min(left, 0.5) * 1000))
            if batch:
                self._process(batch)

    def _resolve_conflict(self, conflict: OffsetConflict, advances: list[OffsetAdvance]) -> None:
        """Reconcile with SQL after a compare-and-set failed for some partitions.

        Stored == our position means an earlier attempt did commit (its
        acknowledgement was lost); anything else means another consumer moved
        the partition. Either way our buffer for it is dropped and we continue
        from what SQL holds.
        """
        ours = {(a.topic, a.partition): a for a in advances}
        recovered: list[OffsetAdvance] = []
        by_topic: dict[str, list[int]] = {}
        for topic, partition in conflict.partitions:
            by_topic.setdefault(topic, []).append(partition)
        if self.labels.topic is not None:
            # Join state is per partition number: both topics' p go back to SQL together.
            numbers = sorted({p for _, p in conflict.partitions})
            by_topic = {t: numbers for t in (self.settings.topic, self.labels.topic)}
        for topic, partitions in by_topic.items():
            stored = self.store.load(topic, partitions)
            self._drop_buffers(topic, set(partitions))
            for p in partitions:
                mine = ours.get((topic, p))
                if mine is not None and p in stored and stored[p].next_offset == mine.next_offset:
                    recovered.append(mine)
                self._restart_from(topic, p, stored.get(p))
        landed = {(a.topic, a.partition) for a in recovered}
        moved = sum(1 for tp in conflict.partitions if tp not in landed)
        if moved:
            self.stats.offset_conflicts(moved)
            log.warning("%s; continuing from the stored offsets", conflict)
        if recovered:
            self._commit_kafka(recovered)

    def _restart_from(self, topic: str, partition: int, stored: StoredOffset | None) -> None:
        key = (topic, partition)
        if self.book.owns(key):
            already = self.book.position(key)
            self.book.reset(key, stored)
            if stored is None or stored.next_offset != already:
                self._seek_start(TopicPartition(topic, partition), stored)

    def _seek_start(self, tp: TopicPartition, stored: StoredOffset | None) -> None:
        """Position ``tp`` where SQL says processing continues."""
        if stored is not None:
            self.consumer.seek(tp, stored.next_offset)
        elif self.settings.start_from_earliest:
            self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek_to_end(tp)

    def _commit_kafka(self, advances: list[Any]) -> None:
        offsets = {
            TopicPartition(a.topic, a.partition): OffsetAndMetadata(a.next_offset, "", -1)
            for a in advances
        }
        try:
            self.consumer.commit_async(offsets)
        except KafkaError as exc:
            log.debug("kafka offset commit skipped (lag tooling only): %s", exc)

    # -- rebalancing -------------------------------------------------------
    def _drop_buffers(self, topic: str, partitions: set[int]) -> None:
        """Forget what was buffered from ``topic``'s ``partitions`` (not yet in SQL)."""
        if topic != self.labels.topic:
            self.acc.drop_partitions(partitions)
        self.labels.drop(topic, partitions)

    def on_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked and self.book.pending():
            flushed = self._flush_with_retry(deadline=self.clock() + self.settings.shutdown_budget)
            if not flushed:
                for tp in revoked:
                    self._drop_buffers(tp.topic, {tp.partition})
        for tp in revoked:
            self.book.revoke((tp.topic, tp.partition))

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        by_topic: dict[str, list[int]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        for topic, partitions in by_topic.items():
            stored = self._load_offsets(topic, partitions)
            self._drop_buffers(topic, set(partitions))
            for p in partitions:
                self.book.assign((topic, p), stored.get(p))
                self._seek_start(TopicPartition(topic, p), stored.get(p))
        # Until their ends are known, new partitions count as having unread events.
        self.progress = ConsumerProgress(
            self.progress.partitions,
            self.progress.busy
            | {tp.partition for tp in assigned if tp.topic == self.settings.topic},
        )
        self._last_lag = 0.0
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

    def _load_offsets(self, topic: str, partitions: list[int]) -> dict[int, StoredOffset]:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                stored = self.store.load(topic, partitions)
                self._set_health(store=True)
                return stored
            except StoreError as exc:
                if not exc.retriable:
                    raise
                self._set_health(store=False)
                log.warning("cannot read stored offsets, retrying in %.1fs: %s", backoff, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.max_backoff)
        raise _Stopping("stopped while waiting for the database to read stored offsets")

    # -- observability -----------------------------------------------------
    def _report_lag(self) -> None:
        now = self.clock()
        if now - self._last_lag < 1.0:
            return
        self._last_lag = now
        busy = set()
        for topic, partition in self.book.owned():
            position = self.book.position((topic, partition))
            high = self.consumer.highwater(TopicPartition(topic, partition))
            if high is not None and position is not None:
                self.stats.lag(topic, partition, max(high - position, 0))
            busy_here = high is None or position is None or position < high
            if busy_here and topic == self.settings.topic:
                busy.add(partition)
        busy.update(a.partition for a in self.book.pending() if a.topic == self.settings.topic)
        known = self.consumer.partitions_for_topic(self.settings.topic) or set()
        self.progress = ConsumerProgress(frozenset(known), frozenset(busy))


def _valid_positions(total: int, decoded: DecodedBatch) -> list[int]:
    """Input index of each valid event: the indices not taken by invalid ones."""
    taken = {i for i, _ in decoded.invalid}
    return [i for i in range(total) if i not in taken]
