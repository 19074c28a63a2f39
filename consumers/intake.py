"""The label half of the ingestion loop: labels on their way into the join.

The loop hands over the labels topic's records and, through a hook, the
predictions it accepted; at a flush it asks for the join work and for fences on
the offsets that flush does not move (see :mod:`consumers.loop` for why both
topics' partition p move together). Without a labels topic, or without a model
whose labels count, there is no join and every call is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from kafka import TopicPartition

from consumers.clients import ConsumerClient
from consumers.errors import InvalidEvent, InvalidReason, from_the_future
from consumers.events import EventDecoder, LabelEvent
from consumers.join import JoinBatch, JoinCounts, LabelOutcome, PartitionObserver
from consumers.labels import JoinBuffer, LabelSpec
from consumers.offsets import OffsetBook
from consumers.stats import IngestStats
from db.repositories import OffsetAdvance, OffsetFence

log = logging.getLogger(__name__)
PredictionHook = Callable[[str, str, int, list[Any]], None]


class LabelIntake:
    def __init__(
        self,
        topic: str | None,
        specs: Mapping[str, LabelSpec] | None,
        stats: IngestStats,
        max_clock_skew: float,
        dead_letter: Callable[[Any, InvalidEvent], None],
        observer: PartitionObserver | None = None,
    ) -> None:
        self.topic = topic if topic and specs else None
        self.buffer = JoinBuffer(dict(specs or {}))
        self.observer = observer  # e.g. streaming detectors, checkpointed per partition
        self._stats = stats
        self._max_clock_skew = max_clock_skew
        self._dead_letter = dead_letter
        # The predictions partitions paused by align(), for the loop's stall watch.
        self.held: frozenset[TopicPartition] = frozenset()

    @property
    def count(self) -> int:
        """Buffered predictions and labels, toward the loop's flush threshold."""
        return self.buffer.count

    def prediction_hook(self, partition: int) -> PredictionHook | None:
        """What registers a predictions partition's accepted events for the join."""
        if self.topic is None:
            return None
        add = self.buffer.add_predictions

        def register(model: str, version: str, start: int, events: list[Any]) -> None:
            add(partition, model, version, start, events)

        return register

    def read(
        self,
        decoder: EventDecoder,
        partition: int,
        records: list[Any],
        watermark: float | None,
        limit: float,
        archive: Callable[[int, LabelEvent], None] | None = None,
    ) -> float | None:
        """Decode and buffer one partition's labels; returns its watermark, their latest time.

        Invalid labels, and labels stamped after ``limit``, are dead-lettered;
        labels of unconfigured models, or of models whose labels are disabled,
        are only counted. ``archive(offset, label)`` sees every label not dead-lettered.
        """
        specs = self.buffer.specs
        for rec in records:
            try:
                label = decoder.decode_label(rec.value)
                if label.event_time > limit:
                    raise from_the_future(self._max_clock_skew)
                # Buffered (which checks the value against its model) before it is
                # archived: a label the stream dead-letters must not reach the late join.
                if label.model in specs:
                    self.buffer.add_label(partition, label)
                else:
                    self._stats.labels(label.model, LabelOutcome.IGNORED, 1)
                if archive is not None:
                    archive(rec.offset, label)
            except InvalidEvent as exc:
                if exc.kind is InvalidReason.UNKNOWN_MODEL and exc.model is not None:
                    self._stats.labels(exc.model, LabelOutcome.UNKNOWN_MODEL, 1)
                else:
                    self._dead_letter(rec, exc)
                continue
            if watermark is None or label.event_time > watermark:
                watermark = label.event_time
        return watermark

    def flush_work(
        self,
        advances: list[OffsetAdvance],
        book: OffsetBook,
        predictions_topic: str,
        windows: Mapping[str, int],
        labels_behind: frozenset[int] = frozenset(),
    ) -> tuple[JoinBatch | None, list[OffsetFence]]:
        """The buffered join work, and the fences on the offsets this flush does not move;
        ``labels_behind`` as :meth:`behind` found them."""
        labels_topic = self.topic
        if labels_topic is None:
            return None, []
        batch = JoinBatch(
            [r for records in self.buffer.predictions.values() for r in records],
            [r for records in self.buffer.labels.values() for r in records],
            specs=self.buffer.specs,
            windows=dict(windows),
            observer=self.observer,
            labels_behind=labels_behind,
        )
        for a in advances:
            if a.watermark is not None:
                if a.topic == labels_topic:
                    batch.label_watermarks[a.partition] = a.watermark
                elif a.topic == predictions_topic:
                    batch.prediction_watermarks[a.partition] = a.watermark
        moving = {(a.topic, a.partition) for a in advances}
        fences = [
            OffsetFence(t, p, book.stored((t, p)))
            for p in sorted(batch.partitions())
            for t in (predictions_topic, labels_topic)
            if (t, p) not in moving and book.owns((t, p))
        ]
        return batch, fences

    def behind(
        self, consumer: ConsumerClient, book: OffsetBook, from_earliest: bool
    ) -> frozenset[int]:
        """The owned partitions of the labels topic with messages still to read.

        An end not known yet counts as behind, and so does a partition read from
        its start with nothing read yet; one positioned at its end with nothing
        read since is not (with no stored offset there is nothing it waits for).
        """
        if self.topic is None:
            return frozenset()
        topic = self.topic
        return frozenset(
            p
            for p in self._label_partitions(book)
            if (n := _unread(consumer, book, topic, p, from_earliest)) is None or n > 0
        )

    def hold(
        self,
        consumer: ConsumerClient,
        book: OffsetBook,
        predictions_topic: str,
        backlog: int,
        from_earliest: bool,
    ) -> frozenset[TopicPartition]:
        """The partitions to hold back (pause) until the other topic's catch up.

        A poll reads both topics by bytes, so in a backlog one topic runs ahead of
        the other in event time (hours, when the other is longer), and what it reads
        waits in SQL for its counterpart: predictions in ``pending_predictions`` when
        the labels are behind, labels in ``pending_labels`` when the predictions are.
        Partition p of one topic is held while its watermark is more than a horizon
        (the longest ``join_ttl``) ahead of the other topic's partition p and more than
        ``backlog`` messages wait to be read there: the runaway side then waits in
        Kafka, and SQL holds about two horizons of it. The count keeps the steady
        state out, where a few messages wait between polls whatever their producers'
        clocks say. The two conditions exclude each other, so one side always reads.
        """
        labels_topic = self.topic
        if labels_topic is None:
            return frozenset()
        horizon = max(spec.join_ttl for spec in self.buffer.specs.values())
        held = set()
        for partition in self._label_partitions(book):
            predictions = book.watermark((predictions_topic, partition))
            labels = book.watermark((labels_topic, partition))
            for topic, ahead, other, behind in (
                (predictions_topic, predictions, labels, labels_topic),
                (labels_topic, labels, predictions, predictions_topic),
            ):
                if ahead is None or (other is not None and ahead - other <= horizon):
                    continue
                unread = _unread(consumer, book, behind, partition, from_earliest)
                if unread is not None and unread > backlog:
                    held.add(TopicPartition(topic, partition))
        return frozenset(held)

    def align(self, consumer: ConsumerClient, held: frozenset[TopicPartition]) -> None:
        """Pause ``held`` (as :meth:`hold` found them), resume the partitions held before
        and no longer. Paused again every time, in case anything resumed them meanwhile.
        """
        released = (self.held - held) & consumer.assignment()
        if held:
            consumer.pause(*held)
        if released:
            consumer.resume(*released)
        for labels, side, other in (
            (False, "predictions", "labels"),
            (True, "labels", "predictions"),
        ):
            before = {tp.partition for tp in self.held if (tp.topic == self.topic) is labels}
            now = sorted(tp.partition for tp in held if (tp.topic == self.topic) is labels)
            if set(now) != before:
                numbers = ", ".join(map(str, now)) or "none"
                log.info(
                    "%s held back until their %s catch up: partitions %s", side, other, numbers
                )
        self.held = held

    def _label_partitions(self, book: OffsetBook) -> list[int]:
        return [p for topic, p in book.owned() if topic == self.topic]

    def committed(self) -> None:
        """The flush holding what was buffered is in SQL."""
        self.buffer.take()

    def drop(self, topic: str, partitions: set[int]) -> None:
        """Forget what was buffered from ``topic``'s ``partitions`` (not yet in SQL)."""
        if topic == self.topic:
            self.buffer.drop_partitions(partitions, predictions=False, labels=True)
        else:
            self.buffer.drop_partitions(partitions, predictions=True, labels=False)


def report_join(stats: IngestStats, counts: JoinCounts) -> None:
    """Count a committed flush's label outcomes, unlabeled predictions and
    concept-drift alarms (each alarm also logged)."""
    for (model, outcome), n in counts.labels.items():
        stats.labels(model, outcome, n)
    for model, n in counts.unlabeled.items():
        stats.unlabeled(model, n)
    for a in counts.alarms:
        stats.alarms(a.model, a.model_version, a.detector, 1)
        log.warning("concept drift alarm: %s", a.describe())


def _unread(
    consumer: ConsumerClient, book: OffsetBook, topic: str, partition: int, from_earliest: bool
) -> int | None:
    """Messages still to read in ``topic``'s ``partition``; None while its end is not known.
    A partition with nothing read yet waits for all of it when read from the start, for
    nothing when started at its end (no stored offset: nothing it owes)."""
    position = book.position((topic, partition))
    if position is None and not from_earliest:
        return 0
    high = consumer.highwater(TopicPartition(topic, partition))
    if high is None:
        return None
    return max(high - (position or 0), 0)
