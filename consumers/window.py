"""Turns decoded events into per-window sketch deltas, partition by partition."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from consumers.events import ModelCodec, PredictionEvent
from db.repositories import WindowDelta, WindowKey
from drift.sketch import CategoryCaps, WindowBatch, WindowSketch

# A window row's events are folded into its sketch this many at a time. A sketch update
# costs about the same for 1 event as for 100 (a call per feature column, the sample, the
# latency): when many models share a stream, a poll brings each model version's window a
# few events, at 200 models often one, and folding them as they came cost ten times the
# CPU per event of 20 models (bench/scale_models.py). Events are held per row until this
# many are there or the flush comes; the flush threshold counts them, which bounds them.
FOLD_EVENTS = 256


@dataclass(slots=True)
class _Group:
    events: list[PredictionEvent] = field(default_factory=list)
    late: list[PredictionEvent] = field(default_factory=list)


class WindowAccumulator:
    """Buffered deltas since the last flush, keyed by window and partition."""

    def __init__(
        self,
        codecs: Mapping[str, ModelCodec],
        caps: CategoryCaps | None = None,
        late_horizon: float | None = None,
    ) -> None:
        self._codecs = codecs
        self._caps = caps  # bounds every window's categorical columns
        # Late events of a window that started more than this before the watermark are
        # counted (metrics, archive) but give their window no row: a stream of events
        # with random old timestamps made a window delta each (a sketch of tens of KB)
        # and a row no evaluation would ever read or retention delete. None: every one.
        self._late_horizon = late_horizon
        # The hot loops inline ModelSpec.window_start and ModelSpec.is_late from these.
        self._timing = {
            name: (c.spec.window_seconds, c.spec.closes_after_seconds) for name, c in codecs.items()
        }
        self._deltas: dict[WindowKey, WindowDelta] = {}
        # Accepted events not yet folded into their row's sketch (see FOLD_EVENTS).
        self._held: dict[WindowKey, list[PredictionEvent]] = {}
        self.events = 0
        # Per window row: the row-sample threshold reached before the last flush.
        self._ceilings: dict[WindowKey, int] = {}

    def add_partition_batch(
        self,
        partition: int,
        events: list[PredictionEvent],
        watermark: float | None,
        on_late: Callable[[str, int], None],
        times: list[float] | None = None,
        on_consumed: Callable[[str, int], None] | None = None,
        on_accepted: Callable[[str, str, int, list[PredictionEvent]], None] | None = None,
        columns: dict[str, Any] | None = None,
        on_late_events: Callable[[list[PredictionEvent]], None] | None = None,
    ) -> float | None:
        """Fold one partition's events in offset order; return the new watermark.

        An event whose window closed (window end + allowed lateness at or before
        the watermark, the latest event time seen before it) is counted as late
        and not aggregated (nor kept in a window row when the window started more
        than the late horizon before the watermark). ``times`` are the events'
        times when already known.
        ``on_accepted(model, version, window_start, events)`` sees the aggregated
        events of each window (the label join registers them). ``columns`` are
        the feature columns of all of ``events`` when already extracted (the
        archive does); they serve when the batch is a single window's.
        ``on_late_events`` sees the late events themselves (the archive marks them).
        """
        wm = -math.inf if watermark is None else watermark
        if times is None:
            times = [e.event_time for e in events]
        groups = self._one_group(events, times, wm) or self._group(events, times, wm)
        if times:
            wm = max(wm, *times)
        stale = -math.inf if self._late_horizon is None else wm - self._late_horizon
        for (model, version, start), group in groups.items():
            if group.late:
                on_late(model, len(group.late))
                if on_late_events is not None:
                    on_late_events(group.late)
                if not group.events and start < stale:
                    continue
            codec = self._codecs[model]
            key = WindowKey(
                model, version, start, codec.spec.window_seconds, partition, codec.spec.layout
            )
            delta = self._deltas.get(key)
            if delta is None:
                delta = self._deltas[key] = WindowDelta(WindowSketch.empty(codec.spec, self._caps))
                delta.sketch.sample.ceiling = self._ceilings.get(key)
            if group.events:
                held = self._held.get(key)
                if held is None and len(group.events) >= FOLD_EVENTS:
                    whole = columns is not None and group.events is events
                    self._fold(codec, delta, group.events, columns if whole else None)
                elif held is None:
                    self._held[key] = list(group.events)
                else:
                    held.extend(group.events)
                    if len(held) >= FOLD_EVENTS:
                        del self._held[key]
                        self._fold(codec, delta, held, None)
                self.events += len(group.events)
                if on_consumed is not None:
                    on_consumed(model, len(group.events))
                if on_accepted is not None:
                    on_accepted(model, version, start, group.events)
            delta.late += len(group.late)
        return None if wm == -math.inf else wm

    @property
    def deltas(self) -> dict[WindowKey, WindowDelta]:
        """Every buffered window row, each with all its accepted events folded in."""
        # Taken before folding: a second read (a retried flush) never folds them twice.
        held, self._held = self._held, {}
        for key, events in held.items():
            self._fold(self._codecs[key.model], self._deltas[key], events, None)
        return self._deltas

    @staticmethod
    def _fold(
        codec: ModelCodec,
        delta: WindowDelta,
        events: list[PredictionEvent],
        columns: dict[str, Any] | None,
    ) -> None:
        """Aggregate ``events`` into ``delta``; ``columns`` are their feature columns when
        already extracted."""
        sampled = codec.spec.sample_size > 0
        delta.sketch.update(
            WindowBatch(
                len(events),
                columns if columns is not None else codec.columns([e.features for e in events]),
                codec.predictions(events),
                [e.event_id for e in events] if sampled else None,
            )
        )
        # None (no latency_ms) becomes NaN here, which the sketch skips.
        delta.latency.update([e.latency_ms for e in events])

    def _one_group(
        self, events: list[PredictionEvent], times: list[float], wm: float
    ) -> dict[tuple[str, str, int], _Group] | None:
        """The common case in one pass of C-level builtins: one model version, one
        open window. None when the batch needs the per-event walk."""
        if not events:
            return {}
        first = events[0]
        width, closes_after = self._timing[first.model]
        start = int(min(times) // width) * width
        # Within one window the watermark never passes the window's close, so
        # checking lateness against the batch's starting watermark suffices.
        if max(times) >= start + width or start + closes_after <= wm:
            return None
        if len({(e.model, e.model_version) for e in events}) != 1:
            return None
        return {(first.model, first.model_version, start): _Group(events)}

    def _group(
        self, events: list[PredictionEvent], times: list[float], wm: float
    ) -> dict[tuple[str, str, int], _Group]:
        """Group by (model, version, window), counting events whose window had closed."""
        groups: dict[tuple[str, str, int], _Group] = {}
        timing = self._timing
        last_key: tuple[str, str, int] | None = None
        group = _Group()
        for ev, t in zip(events, times, strict=True):
            width, closes_after = timing[ev.model]
            start = int(t // width) * width
            group_key = (ev.model, ev.model_version, start)
            if group_key != last_key:
                group = groups.get(group_key) or groups.setdefault(group_key, _Group())
                last_key = group_key
            if start + closes_after <= wm:
                group.late.append(ev)
            else:
                group.events.append(ev)
            if t > wm:  # noqa: PLR1730 -- a branch is cheaper than a call here
                wm = t
        return groups

    def take(self) -> dict[WindowKey, WindowDelta]:
        deltas, self._deltas, self.events = self.deltas, {}, 0
        # The stored row's sample is the bottom-k of these and earlier events, so
        # later events with keys above this flush's threshold can never enter it.
        # Only windows active in this flush are remembered, which bounds the map.
        self._ceilings = {
            key: limit
            for key, delta in deltas.items()
            if (limit := delta.sketch.sample.threshold) is not None
        }
        return deltas

    def drop_partitions(self, partitions: set[int]) -> None:
        """Discard what was buffered for partitions this consumer no longer trusts."""
        kept = {k: d for k, d in self.deltas.items() if k.partition not in partitions}
        self._ceilings = {k: v for k, v in self._ceilings.items() if k.partition not in partitions}
        self.events = sum(d.sketch.events for d in kept.values())
        self._deltas = kept
