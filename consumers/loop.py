"""The ingestion loop: poll, decode, aggregate, and flush exactly once.

Exactly-once effect without Kafka transactions: the aggregates and the next offsets of
every owned partition are written in one SQL transaction, and on every assignment the
consumer seeks to the offsets stored in SQL. Kafka's own committed offsets are written
afterwards, only for lag tooling. Whatever the moment of a crash, the state in SQL is
that of some prefix of every partition, and processing resumes exactly after it.

While the database or the dead-letter topic is unreachable the loop pauses its
partitions, keeps its group membership by polling, and retries the same flush
with backoff. Where partitions start and how a conflict is reconciled with SQL
is :class:`consumers.positions.Positions`; polling through broker outages and
replacing a client that stopped fetching, :mod:`consumers.upkeep`.

With labels, the loop subscribes to the labels topic too, in the same group and
with the range assignor, so partition p of both topics (keyed by event_id, same
partition count) belongs to the same replica. The join state of p is written in
the flush transaction with both topics' offsets, and whatever moves one topic's p
back to SQL (a conflict, a revocation) moves both. The label side (decoding,
buffering, a flush's join work) is :class:`consumers.intake.LabelIntake`.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kafka import TopicPartition

from consumers.archive import ArchiveIntake, NoArchive, valid_offsets
from consumers.checkpoint import CheckpointStore
from consumers.clients import SYSTEM_CLOCK, Clock, ConsumerClient, Record
from consumers.dlq import DeadLetterPublisher, envelope
from consumers.errors import DeadLetterError, InvalidEvent, from_the_future
from consumers.events import EventDecoder
from consumers.intake import LabelIntake, report_join
from consumers.join import PartitionObserver
from consumers.labels import LabelSpec
from consumers.offsets import OffsetBook
from consumers.positions import Positions, Rebalance, Stopping
from consumers.progress import ConsumerProgress, OwnedPartition, survey
from consumers.retry import Dependency, Health, ShutdownBudget, retrying_until
from consumers.settings import IngestSettings
from consumers.stats import IngestStats
from consumers.upkeep import ConsumerFactory, Polls, Recycler, close_quietly
from consumers.versions import VersionGate
from consumers.window import WindowAccumulator
from db.errors import OffsetConflict
from drift.schema import ModelSpec

__all__ = ["ConsumerProgress", "IngestLoop", "IngestSettings"]
log = logging.getLogger(__name__)
CHUNK_RECORDS = 512  # the most records of one partition read together (see _process)


class IngestLoop:
    def __init__(
        self,
        consumer: ConsumerClient,
        decoder: EventDecoder,
        store: CheckpointStore,
        dead_letters: DeadLetterPublisher,
        settings: IngestSettings,
        stats: IngestStats,
        clock: Clock = SYSTEM_CLOCK,
        label_specs: Mapping[str, LabelSpec] | None = None,
        join_observer: PartitionObserver | None = None,
        archive: ArchiveIntake | None = None,
        versions: VersionGate | None = None,  # default: the cap of settings, nothing protected
        new_consumer: ConsumerFactory | None = None,  # for recycle(); None refuses it
    ) -> None:
        self.consumer = consumer
        self.decoder = decoder
        self.store = store
        self.dlq = dead_letters
        self.settings = settings
        self.stats = stats
        self.clock = clock
        self.book = OffsetBook()
        self.archive = archive or NoArchive()
        self.acc = WindowAccumulator(
            decoder.codecs, settings.caps.categories, settings.late_horizon
        )
        self.versions = versions or VersionGate(settings.caps.max_versions)
        self.labels = LabelIntake(
            settings.labels_topic,
            label_specs,
            stats,
            settings.max_clock_skew,
            self._dead_letter,
            join_observer,
        )
        self.health = Health(stats)
        self.recycler = Recycler(new_consumer, self.health)
        self.positions = Positions(
            consumer,
            store,
            self.book,
            start_from_earliest=settings.start_from_earliest,
            max_backoff=settings.max_backoff,
            health=self.health,
            stats=stats,
            clock=clock,
        )
        self._stop = threading.Event()
        # Asks whichever stop event run() was given.
        self._budget = ShutdownBudget(
            settings.shutdown_budget,
            clock.monotonic,
            lambda: self._stop.is_set(),  # noqa: PLW0108 -- late-bound: run() replaces _stop
        )
        self._last_flush = clock.monotonic()
        self._flush_took = 0.0  # the last flush's duration, which spaces the next
        self._last_lag = -1.0
        self._polls = Polls(self.health, clock, settings.max_backoff)
        self._new_specs: Mapping[str, ModelSpec] | None = None
        # Replaced whole (never mutated), so other threads may read it without a lock.
        self.progress = ConsumerProgress()

    def replace_models(self, specs: Mapping[str, ModelSpec]) -> None:
        """Switch to new model specs (e.g. a new profile's bins) at the next iteration.
        Safe from another thread: the loop flushes what it holds under the old specs
        first. Windows then get rows of the new layout beside the old."""
        self._new_specs = dict(specs)

    def _apply_new_specs(self) -> None:
        specs, self._new_specs = self._new_specs, None
        if specs is None:
            return
        self._flush_with_retry(deadline=None)
        self.decoder = EventDecoder(specs)
        self.acc = WindowAccumulator(
            self.decoder.codecs, self.settings.caps.categories, self.settings.late_horizon
        )
        log.info("model specs replaced: %s", ", ".join(sorted(specs)))

    def recycle(self, reason: str) -> bool:
        """Replace the Kafka consumer soon (any thread); see :class:`consumers.upkeep.Recycler`."""
        return self.recycler.request(reason)

    def _recycle_consumer(self) -> None:
        reason = self.recycler.take()
        if not self._flush_with_retry(deadline=None) or self._stop.is_set():
            return  # stopping: the close comes anyway
        if (fresh := self.recycler.build()) is None:
            return
        # close() calls the revocation callback only while the membership holds: revoke here.
        self.on_revoked([TopicPartition(t, p) for t, p in self.book.owned()])
        self.labels.held = frozenset()
        close_quietly(self.consumer)
        self.consumer = self.positions.consumer = fresh
        self._subscribe()
        self.stats.recycled()
        log.warning("replaced the Kafka consumer: %s", reason)

    # -- main loop ---------------------------------------------------------
    def _subscribe(self) -> None:
        topics = [t for t in (self.settings.topic, self.labels.topic) if t is not None]
        self.consumer.subscribe(topics, listener=Rebalance(self))

    def run(self, stop: threading.Event | None = None) -> None:
        """Consume until ``stop`` is set, then flush what is buffered and close."""
        self._stop = stop or threading.Event()
        self._subscribe()
        try:
            while not self._stop.is_set():
                if self._new_specs is not None:
                    self._apply_new_specs()
                if self.recycler.due:
                    self._recycle_consumer()
                batch = self._poll(int(self.settings.poll_timeout * 1000))
                if batch:
                    self._process(batch)
                # After every poll, empty ones too: a flush's retry or a rebalance may
                # have left a partition paused or resumed that should not be.
                self._align()
                if self._flush_due():
                    self._flush_with_retry(deadline=None)
                self._report_lag()
            self._flush_with_retry(deadline=self._shutdown_deadline())
        except Stopping as exc:
            log.warning("%s; nothing was lost, unflushed events will be read again", exc)
        finally:
            close_quietly(self.consumer)
            self.archive.close(max(0.0, self._shutdown_deadline() - self.clock.monotonic()))

    def _poll(self, timeout_ms: int) -> Mapping[TopicPartition, list[Any]]:
        return self._polls.poll(self.consumer, timeout_ms, self._stop)

    def _process(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        limit = self.clock.time() + self.settings.max_clock_skew
        for tp, records in batch.items():
            key = (tp.topic, tp.partition)
            if not self.book.owns(key):
                continue  # revoked while this batch was in flight
            if tp.topic == self.labels.topic:
                wm = self.labels.read(
                    self.decoder,
                    tp.partition,
                    records,
                    self.book.watermark(key),
                    limit,
                    functools.partial(self.archive.add_label, tp.topic, tp.partition),
                )
                self.book.advance(key, records[-1].offset + 1, wm)
                continue
            # A poll brings thousands of a partition's records: read whole, each feature's
            # column read walks more events than the CPU cache holds (~1.4x the CPU per
            # event at 4,000 as at 500). A slice is handled as a poll of its own would be.
            for start in range(0, len(records), CHUNK_RECORDS):
                self._predictions(tp, records[start : start + CHUNK_RECORDS], limit)
            records.clear()  # freed now, not walked by GC while the next partition is read

    def _predictions(self, tp: TopicPartition, records: list[Any], limit: float) -> None:
        """Decode, screen, archive and aggregate a run of one partition's records."""
        key = (tp.topic, tp.partition)
        decoded = self.decoder.decode_batch([r.value for r in records])
        if decoded.times and max(decoded.times) > limit:
            decoded.reject_after(limit, from_the_future(self.settings.max_clock_skew))
        self.versions.screen(decoded, self.decoder.codecs)
        for index, exc in sorted(decoded.invalid, key=lambda pair: pair[0]):
            self._dead_letter(records[index], exc)
        offsets = valid_offsets(records, {i for i, _ in decoded.invalid})
        next_offset = records[-1].offset + 1
        columns = self.archive.add_predictions(
            self.decoder.codecs, tp.topic, tp.partition, offsets, decoded.events, decoded.times
        )
        watermark = self.acc.add_partition_batch(
            tp.partition,
            decoded.events,
            self.book.watermark(key),
            self.stats.late,
            times=decoded.times,
            on_consumed=self.stats.consumed,
            on_accepted=self.labels.prediction_hook(tp.partition),
            columns=columns,
            on_late_events=self.archive.mark_late,
        )
        self.book.advance(key, next_offset, watermark)

    def _align(self) -> None:
        s = self.settings
        held = self.labels.hold(
            self.consumer, self.book, s.topic, s.hold_backlog, s.start_from_earliest
        )
        self.labels.align(self.consumer, held)

    def _dead_letter(self, rec: Record, exc: InvalidEvent) -> None:
        at = self.clock.time()
        letter = envelope(str(exc), rec.topic, rec.partition, rec.offset, rec.key, rec.value, at)
        self.dlq.publish(rec.key, letter)
        self.stats.invalid(exc.kind.value)

    # -- flushing ----------------------------------------------------------
    def _flush_due(self) -> bool:
        s = self.settings
        if self.acc.events + self.labels.count >= s.flush_events:
            return True
        # A flush costs per window row it touches, however few events each got: with many
        # models it can outlast flush_interval, and flushing again at once left the loop
        # doing little else. Spaced to max_flush_share, each flush carries more events for
        # the same rows; flush_events still bounds what is buffered.
        spacing = max(s.flush_interval, self._flush_took / s.max_flush_share)
        return self.clock.monotonic() - self._last_flush >= spacing

    def _shutdown_deadline(self) -> float:
        return self._budget.deadline()

    def flush_once(self) -> None:
        """Make buffered work durable: dead letters, the archive, then one SQL transaction."""
        self._last_flush = self.clock.monotonic()
        advances = self.book.pending()
        if not advances:
            return
        started = self.clock.monotonic()
        self.dlq.confirm(timeout=10.0)
        # The archive is written before SQL commits: a crash between the two
        # replays events that the archive then skips. Its append runs while the
        # SQL transaction is built, and the commit waits for it.
        archived = self.archive.start(advances)
        try:
            events = self.acc.events
            windows = {m: c.spec.window_seconds for m, c in self.decoder.codecs.items()}
            behind = self.labels.behind(self.consumer, self.book, self.settings.start_from_earliest)
            join, fences = self.labels.flush_work(
                advances, self.book, self.settings.topic, windows, behind
            )
            counts = self.store.commit(
                advances, self.acc.deltas, join, fences, before_commit=archived.wait
            )
        except OffsetConflict as conflict:
            archived.join()
            linked = None
            if self.labels.topic is not None:
                linked = (self.settings.topic, self.labels.topic)
            self.positions.resolve_conflict(conflict, advances, linked, self._drop_buffers)
            return self.flush_once()
        finally:
            # Whatever failed, the append is over before the buffers are touched again;
            # an append that failed unseen keeps its buffer for the next flush.
            archived.join()
        self.acc.take()
        self.labels.committed()
        self.book.confirm(advances)
        self._flush_took = self.clock.monotonic() - started
        self.stats.flushed(self._flush_took, events)
        report_join(self.stats, counts)
        self.positions.commit_kafka(advances)

    def _flush_with_retry(self, deadline: float | None) -> bool:
        """Flush, retrying retriable failures with backoff until done or ``deadline``
        (monotonic; None: until done, or the stop's deadline once the loop is stopping)."""
        # Inside a rebalance callback (deadline set) polling again is not allowed.
        may_poll = deadline is None

        def failed(exc: BaseException) -> None:
            down = Dependency.DEAD_LETTERS if isinstance(exc, DeadLetterError) else Dependency.STORE
            self.health.down(down)
            self.stats.flush_failed(type(exc).__name__)

        retrying = retrying_until(
            self._budget.bounding(deadline),
            self.clock.monotonic,
            self.settings.max_backoff,
            sleep=lambda seconds: self._wait(seconds, may_poll),
            on_failure=failed,
        )
        try:
            return bool(retrying(self._flush_and_report))
        finally:
            if may_poll:  # what _wait paused; the partitions held for their labels stay
                self.consumer.resume(*(self.consumer.assignment() - self.labels.held))

    def _flush_and_report(self) -> bool:
        self.flush_once()
        self.health.up(Dependency.STORE, Dependency.DEAD_LETTERS)
        return True

    def _wait(self, seconds: float, may_poll: bool) -> None:
        end = self.clock.monotonic() + seconds
        while (left := end - self.clock.monotonic()) > 0:
            # A flush retried for minutes must still show what waits (stall watch, /readyz).
            self._report_lag()
            if not may_poll or self._stop.is_set():
                self.clock.sleep(min(left, 0.1))
                continue
            # Paused partitions fetch nothing; polling keeps heartbeats and rebalances
            # going. A rebalance may hand us new, unpaused partitions, so pause again
            # each time and process whatever such a poll returned rather than skip it.
            self.consumer.pause(*self.consumer.assignment())
            batch = self._poll(int(min(left, 0.5) * 1000))
            if batch:
                self._process(batch)

    # -- rebalancing -------------------------------------------------------
    def _drop_buffers(self, topic: str, partitions: set[int]) -> None:
        """Forget what was buffered from ``topic``'s ``partitions`` (not yet in SQL)."""
        if topic != self.labels.topic:
            self.acc.drop_partitions(partitions)
        self.labels.drop(topic, partitions)
        self.archive.drop(topic, partitions)

    def on_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked and self.book.pending():
            flushed = self._flush_with_retry(deadline=self._shutdown_deadline())
            if not flushed:
                for tp in revoked:
                    self._drop_buffers(tp.topic, {tp.partition})
        self.progress = replace(self.progress, assigned=False)
        for tp in revoked:
            self.book.revoke((tp.topic, tp.partition))

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        self.positions.assign(assigned, self._drop_buffers, self._stop)
        # Until their ends are known, the new partitions of every topic count as unread.
        new = {(tp.topic, tp.partition) for tp in assigned}
        kept = tuple(o for o in self.progress.owned if (o.topic, o.partition) not in new)
        self.progress = ConsumerProgress(
            self.progress.partitions,
            self.progress.busy | {p for t, p in new if t == self.settings.topic},
            kept + tuple(OwnedPartition(t, p, None, None, None) for t, p in sorted(new)),
            assigned=True,
        )
        self._last_lag = -1.0
        log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

    # -- observability -----------------------------------------------------
    def _report_lag(self) -> None:
        now = self.clock.monotonic()
        if self._last_lag >= 0 and now - self._last_lag < 1.0:
            return
        self._last_lag = now
        assigned = self.progress.assigned
        self.progress = survey(
            self.book, self.consumer, self.settings.topic, self.stats, assigned, self.labels.held
        )
