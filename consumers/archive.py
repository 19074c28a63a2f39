"""The ingestion loop's side of the labeled-event archive.

The loop hands over, per poll and partition, the valid prediction events with
their offsets and each valid label; a flush turns what was buffered into one
Arrow table per model and kind and appends it through an :class:`ArchiveSink`
(:class:`db.archive.ArchiveWriter`) before the SQL transaction commits. The
sink drops whatever an earlier, replayed flush already archived, so a buffer
is cleared once its append is done and never needs to be rolled back.
:class:`NoArchive` stands in when no model is archived.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from consumers.events import LabelEvent, ModelCodec, PredictionEvent
from db.archive import Kind, label_table, prediction_table
from db.repositories import OffsetAdvance


class ArchiveSink(Protocol):
    def append(
        self, model: str, kind: Kind, rows: pa.Table, next_offsets: Mapping[tuple[str, int], int]
    ) -> int: ...


@dataclass(slots=True)
class _Predictions:
    codec: ModelCodec
    topic: str
    events: list[PredictionEvent] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    partitions: list[np.ndarray] = field(default_factory=list)


@dataclass(slots=True)
class _Labels:
    topic: str
    event_ids: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)


class ArchiveIntake:
    """Buffers the archived models' events between flushes."""

    def __init__(self, sink: ArchiveSink, models: Collection[str]) -> None:
        self.sink = sink
        self.models = frozenset(models)
        self._predictions: dict[str, _Predictions] = {}
        self._labels: dict[str, _Labels] = {}

    def add_predictions(
        self,
        codecs: Mapping[str, ModelCodec],
        topic: str,
        partition: int,
        offsets: list[int],
        events: list[PredictionEvent],
        times: list[float],
    ) -> None:
        """One partition's valid events of a poll, in offset order, with their offsets."""
        if not events or not self.models:
            return
        first = events[0].model
        if all(e.model == first for e in events):
            self._add(codecs, first, topic, partition, offsets, events, times)
            return
        for model in {e.model for e in events}:
            picked = [i for i, e in enumerate(events) if e.model == model]
            self._add(
                codecs,
                model,
                topic,
                partition,
                [offsets[i] for i in picked],
                [events[i] for i in picked],
                [times[i] for i in picked],
            )

    def _add(
        self,
        codecs: Mapping[str, ModelCodec],
        model: str,
        topic: str,
        partition: int,
        offsets: list[int],
        events: list[PredictionEvent],
        times: list[float],
    ) -> None:
        if model not in self.models:
            return
        buf = self._predictions.get(model)
        if buf is None:
            buf = self._predictions[model] = _Predictions(codecs[model], topic)
        buf.events.extend(events)
        buf.times.extend(times)
        buf.offsets.extend(offsets)
        buf.partitions.append(np.full(len(events), partition, np.int32))

    def add_label(self, topic: str, partition: int, offset: int, label: LabelEvent) -> None:
        if label.model not in self.models:
            return
        buf = self._labels.get(label.model)
        if buf is None:
            buf = self._labels[label.model] = _Labels(topic)
        buf.event_ids.append(label.event_id)
        buf.labels.append(label.label)
        buf.times.append(label.event_time)
        buf.offsets.append(offset)
        buf.partitions.append(partition)

    def flush(self, advances: list[OffsetAdvance]) -> None:
        """Append every buffered table; raises StoreError (ArchiveError) as the store does."""
        next_offsets = {(a.topic, a.partition): a.next_offset for a in advances}
        for model in sorted(self._predictions):
            p = self._predictions[model]
            rows = prediction_table(
                p.codec.spec,
                [e.event_id for e in p.events],
                [e.model_version for e in p.events],
                p.times,
                p.codec.columns([e.features for e in p.events]),
                [e.prediction for e in p.events],
                p.topic,
                np.concatenate(p.partitions),
                np.asarray(p.offsets, np.int64),
            )
            self.sink.append(model, Kind.PREDICTIONS, rows, next_offsets)
            del self._predictions[model]
        for model in sorted(self._labels):
            b = self._labels[model]
            rows = label_table(
                b.event_ids,
                b.labels,
                b.times,
                b.topic,
                np.asarray(b.partitions, np.int32),
                np.asarray(b.offsets, np.int64),
            )
            self.sink.append(model, Kind.LABELS, rows, next_offsets)
            del self._labels[model]

    def drop(self, topic: str, partitions: set[int]) -> None:
        """Forget what was buffered from ``topic``'s ``partitions``; it will be read again."""
        for model, p in list(self._predictions.items()):
            if p.topic != topic:
                continue
            where = np.concatenate(p.partitions)
            keep = [i for i, part in enumerate(where.tolist()) if part not in partitions]
            if not keep:
                del self._predictions[model]
                continue
            p.events = [p.events[i] for i in keep]
            p.times = [p.times[i] for i in keep]
            p.offsets = [p.offsets[i] for i in keep]
            p.partitions = [where[keep]]
        for model, b in list(self._labels.items()):
            if b.topic != topic:
                continue
            keep = [i for i, part in enumerate(b.partitions) if part not in partitions]
            b.event_ids = [b.event_ids[i] for i in keep]
            b.labels = [b.labels[i] for i in keep]
            b.times = [b.times[i] for i in keep]
            b.offsets = [b.offsets[i] for i in keep]
            b.partitions = [b.partitions[i] for i in keep]
            if not keep:
                del self._labels[model]


class NoArchive(ArchiveIntake):
    """No model is archived: every call does nothing."""

    def __init__(self) -> None:
        super().__init__(_NoSink(), ())


class _NoSink:
    def append(
        self, model: str, kind: Kind, rows: pa.Table, next_offsets: Mapping[tuple[str, int], int]
    ) -> int:
        return 0


def valid_offsets(records: list[Any], invalid: Collection[int]) -> list[int]:
    """Offsets of a poll's records but those at the ``invalid`` indices."""
    if not invalid:
        return [r.offset for r in records]
    return [r.offset for i, r in enumerate(records) if i not in invalid]
