"""The ingestion loop's side of the labeled-event archive.

The loop hands over, per poll and partition, the valid prediction events with
their offsets and each valid label; a flush turns what was buffered into one
Arrow table per model and kind and appends it through an :class:`ArchiveSink`
(:class:`db.archive.ArchiveWriter`). The sink drops whatever an earlier,
replayed flush already archived, so a buffer is cleared once its append is
done and never needs to be rolled back.

A flush's appends run on a thread of their own (:meth:`ArchiveIntake.start`)
while the loop builds its SQL transaction, and the loop waits for them before
that transaction commits: the archive is still written first, but the Parquet
encoding and the Delta commit, which release the GIL, overlap the SQL work.
:class:`NoArchive` stands in when no model is archived.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import pyarrow as pa

from consumers.events import LabelEvent, ModelCodec, PredictionEvent
from db.archive import Kind, label_table, prediction_table
from db.repositories import OffsetAdvance

T = TypeVar("T")
log = logging.getLogger(__name__)


class ArchiveSink(Protocol):
    def append(
        self, model: str, kind: Kind, rows: pa.Table, next_offsets: Mapping[tuple[str, int], int]
    ) -> int: ...

    def close(self, timeout: float) -> bool:
        """Done appending: wait up to ``timeout`` for work the appends left running."""
        ...


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One partition's archived events of one poll: the fields the table needs.

    Only what the archive writes is kept, not the decoded events: they are freed
    with their slice of the poll, while it is still in the CPU's cache, instead of
    living until the flush (20,000 by default, ~1 KB each) and all being freed at
    once on the flush's thread, holding the GIL the loop needs.
    """

    partition: int
    event_ids: list[str]
    versions: list[str]
    predictions: list[Any]
    times: list[float]
    offsets: list[int]
    columns: dict[str, Any]
    # Positions of the events that arrived after their window closed (rare).
    late: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Predictions:
    codec: ModelCodec
    topic: str
    chunks: list[_Chunk] = field(default_factory=list)

    def table(self) -> pa.Table:
        chunks = self.chunks
        features = {name: _concat([c.columns[name] for c in chunks]) for name in chunks[0].columns}
        offsets = np.asarray([o for c in chunks for o in c.offsets], np.int64)
        late = None
        if any(c.late for c in chunks):
            late = np.zeros(len(offsets), np.bool_)
            start = 0
            for c in chunks:
                late[[start + i for i in c.late]] = True
                start += len(c.offsets)
        return prediction_table(
            self.codec.spec,
            [i for c in chunks for i in c.event_ids],
            [v for c in chunks for v in c.versions],
            [t for c in chunks for t in c.times],
            features,
            [p for c in chunks for p in c.predictions],
            self.topic,
            np.concatenate([np.full(len(c.offsets), c.partition, np.int32) for c in chunks]),
            offsets,
            late,
        )


def _concat(parts: list[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    return list(itertools.chain.from_iterable(parts))


@dataclass(slots=True)
class _Labels:
    topic: str
    event_ids: list[str] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    partitions: list[int] = field(default_factory=list)


class PendingAppend:
    """A flush's appends under way on their own thread; :meth:`wait` re-raises their error."""

    def __init__(self, work: Any) -> None:
        self._error: BaseException | None = None
        # A daemon thread: a hung object store must not keep a stopping process alive.
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work: Any) -> None:
        try:
            work()
        except BaseException as exc:  # handed to the loop's thread by wait()
            self._error = exc

    def join(self) -> None:
        """Wait for the appends to end, whatever their outcome."""
        self._thread.join()

    def wait(self) -> None:
        """Wait for the appends to end; raise what made them fail."""
        self._thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error


class _Done(PendingAppend):
    def __init__(self) -> None:
        self._error = None

    def join(self) -> None:
        return None

    def wait(self) -> None:
        return None


def _preload_pandas() -> None:
    """Import pandas now, at start-up, if it is installed.

    pyarrow imports it the first time a table leaves through the Arrow C stream
    interface, which is how deltalake takes every append. Left to that moment,
    its few hundred modules load in the middle of the first flush (0.4-0.5 s of
    CPU measured here) and their 34,000 tracked objects stay outside the start-up
    heap that :func:`service.process.settle_heap` freezes, in every later full
    collection.
    """
    with contextlib.suppress(ImportError):
        importlib.import_module("pandas")


class ArchiveIntake:
    """Buffers the archived models' events between flushes."""

    def __init__(self, sink: ArchiveSink, models: Collection[str], workers: int = 1) -> None:
        self.sink = sink
        self.models = frozenset(models)
        self.workers = workers
        self._predictions: dict[str, _Predictions] = {}
        self._labels: dict[str, _Labels] = {}
        # The chunks of the last add_predictions with their events, for mark_late.
        self._polled: list[tuple[_Chunk, list[PredictionEvent]]] = []
        if self.models:
            _preload_pandas()

    def add_predictions(
        self,
        codecs: Mapping[str, ModelCodec],
        topic: str,
        partition: int,
        offsets: list[int],
        events: list[PredictionEvent],
        times: list[float],
    ) -> dict[str, Any] | None:
        """One partition's valid events of a poll, in offset order, with their offsets.

        Returns the feature columns of all of ``events`` when it extracted them
        (one archived model), so that the window sketches need not read the
        events a second time; None otherwise.
        """
        self._polled = []
        if not events or not self.models:
            return None
        first = events[0].model
        if all(e.model == first for e in events):
            return self._add(codecs, first, topic, partition, offsets, events, times)
        # One pass over the poll: a pass per model would cost (models in the poll) x
        # (events), which grows with the number of models monitored.
        by_model: dict[str, list[int]] = {}
        for i, e in enumerate(events):
            by_model.setdefault(e.model, []).append(i)
        for model, picked in by_model.items():
            self._add(
                codecs,
                model,
                topic,
                partition,
                [offsets[i] for i in picked],
                [events[i] for i in picked],
                [times[i] for i in picked],
            )
        return None

    def _add(
        self,
        codecs: Mapping[str, ModelCodec],
        model: str,
        topic: str,
        partition: int,
        offsets: list[int],
        events: list[PredictionEvent],
        times: list[float],
    ) -> dict[str, Any] | None:
        if model not in self.models:
            return None
        buf = self._predictions.get(model)
        if buf is None:
            buf = self._predictions[model] = _Predictions(codecs[model], topic)
        columns = buf.codec.columns([e.features for e in events])
        chunk = _Chunk(
            partition,
            [e.event_id for e in events],
            [e.model_version for e in events],
            [e.prediction for e in events],
            times,
            offsets,
            columns,
        )
        buf.chunks.append(chunk)
        self._polled.append((chunk, events))
        return columns

    def mark_late(self, events: Collection[PredictionEvent]) -> None:
        """Mark ``events``, of the last :meth:`add_predictions`, as arrived after their
        window closed: the window accumulator decides that after they were buffered."""
        late = {id(e) for e in events}
        for chunk, polled in self._polled:
            chunk.late.extend(i for i, e in enumerate(polled) if id(e) in late)

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

    def start(self, advances: list[OffsetAdvance]) -> PendingAppend:
        """Begin :meth:`flush` on a thread of its own. The caller waits for it before
        anything else touches this buffer, and before its SQL transaction commits."""
        if not self._predictions and not self._labels:
            return _Done()
        return PendingAppend(lambda: self.flush(advances))

    def flush(self, advances: list[OffsetAdvance]) -> None:
        """Append every buffered table, ``workers`` at a time; raises StoreError
        (ArchiveError) as the store does, the first failed table's in order.

        A flush appends to a table per archived model and kind, each a Delta commit of
        its own: one after another, they took about 10 ms each on a local disk, so at
        200 models the archive alone outlasted the 2-second flush interval, and on an
        object store every commit waits for several requests. Each table is one
        writer's at a time, and an append that fails leaves its buffer for the retry
        (which drops whatever was archived); after a failure no further append starts.
        """
        next_offsets = {(a.topic, a.partition): a.next_offset for a in advances}
        tables = [(m, Kind.PREDICTIONS) for m in sorted(self._predictions)]
        tables += [(m, Kind.LABELS) for m in sorted(self._labels)]
        errors = _each(tables, lambda t: self._append(*t, next_offsets), self.workers)
        if errors:
            raise errors[0]

    def _append(self, model: str, kind: Kind, next_offsets: Mapping[tuple[str, int], int]) -> None:
        if kind is Kind.PREDICTIONS:
            rows = self._predictions[model].table()
        else:
            b = self._labels[model]
            rows = label_table(
                b.event_ids,
                b.labels,
                b.times,
                b.topic,
                np.asarray(b.partitions, np.int32),
                np.asarray(b.offsets, np.int64),
            )
        self.sink.append(model, kind, rows, next_offsets)
        # Each worker removes only its own table's entry: no two touch one key.
        (self._predictions if kind is Kind.PREDICTIONS else self._labels).pop(model)

    def close(self, timeout: float) -> None:
        """The loop has stopped: let the sink finish what it runs in the background
        (a compaction under way) for at most ``timeout`` seconds, what the stop's
        budget has left."""
        if not self.sink.close(timeout):
            log.warning("an archive compaction was still running at shutdown; left unfinished")

    def drop(self, topic: str, partitions: set[int]) -> None:
        """Forget what was buffered from ``topic``'s ``partitions``; it will be read again."""
        for model, p in list(self._predictions.items()):
            if p.topic != topic:
                continue
            p.chunks = [c for c in p.chunks if c.partition not in partitions]
            if not p.chunks:
                del self._predictions[model]
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

    def close(self, timeout: float) -> bool:
        return True


def _each(jobs: Sequence[T], work: Callable[[T], None], workers: int) -> list[BaseException]:
    """Run ``work`` on each job, up to ``workers`` at once; the errors, in the jobs' order.

    Once a job has failed no further one starts (a store that is down would fail each
    in turn, after its own timeouts). Daemon threads, as :class:`PendingAppend`'s: a
    hung object store must not keep a stopping process alive.
    """
    errors: list[BaseException | None] = [None] * len(jobs)
    pending = iter(enumerate(jobs))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                taken = None if any(errors) else next(pending, None)
            if taken is None:
                return
            i, job = taken
            try:
                work(job)
            except BaseException as exc:  # handed to the flush's thread
                errors[i] = exc

    if workers <= 1 or len(jobs) <= 1:
        run()
    else:
        threads = [
            threading.Thread(target=run, daemon=True) for _ in range(min(workers, len(jobs)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return [e for e in errors if e is not None]


def valid_offsets(records: list[Any], invalid: Collection[int]) -> list[int]:
    """Offsets of a poll's records but those at the ``invalid`` indices."""
    if not invalid:
        return [r.offset for r in records]
    return [r.offset for i, r in enumerate(records) if i not in invalid]
