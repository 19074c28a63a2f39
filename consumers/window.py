"""Turns decoded events into per-window sketch deltas, partition by partition."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from consumers.events import ModelCodec, PredictionEvent
from db.repositories import WindowDelta, WindowKey
from drift.sketch import WindowBatch, WindowSketch


@dataclass(slots=True)
class _Group:
    events: list[PredictionEvent] = field(default_factory=list)
    late: int = 0


class WindowAccumulator:
    """Buffered deltas since the last flush, keyed by window and partition."""

    def __init__(self, codecs: Mapping[str, ModelCodec]) -> None:
        self._codecs = codecs
        self.deltas: dict[WindowKey, WindowDelta] = {}
        self.events = 0

    def add_partition_batch(
        self,
        partition: int,
        events: list[PredictionEvent],
        watermark: float | None,
        on_late: Callable[[str, int], None],
    ) -> float | None:
        """Fold one partition's events in offset order; return the new watermark.

        An event whose window closed (window end + allowed lateness at or before
        the watermark, the latest event time seen before it) is counted as late
        and not aggregated.
        """
        groups: defaultdict[tuple[str, str, int], _Group] = defaultdict(_Group)
        for ev in events:
            spec = self._codecs[ev.model].spec
            group = groups[(ev.model, ev.model_version, spec.window_start(ev.event_time))]
            if spec.is_late(ev.event_time, watermark):
                group.late += 1
            else:
                group.events.append(ev)
            if watermark is None or ev.event_time > watermark:
                watermark = ev.event_time
        for (model, version, start), group in groups.items():
            codec = self._codecs[model]
            key = WindowKey(
                model, version, start, codec.spec.window_seconds, partition, codec.spec.layout
            )
            delta = self.deltas.get(key)
            if delta is None:
                delta = self.deltas[key] = WindowDelta(WindowSketch.empty(codec.spec))
            if group.events:
                delta.sketch.update(
                    WindowBatch(
                        len(group.events),
                        codec.columns([e.features for e in group.events]),
                        [e.prediction for e in group.events],
                    )
                )
                self.events += len(group.events)
            if group.late:
                delta.late += group.late
                on_late(model, group.late)
        return watermark

    def take(self) -> dict[WindowKey, WindowDelta]:
        deltas, self.deltas, self.events = self.deltas, {}, 0
        return deltas

    def drop_partitions(self, partitions: set[int]) -> None:
        """Discard what was buffered for partitions this consumer no longer trusts."""
        kept = {k: d for k, d in self.deltas.items() if k.partition not in partitions}
        self.events = sum(d.sketch.events for d in kept.values())
        self.deltas = kept
