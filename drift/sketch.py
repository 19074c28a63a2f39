"""Mergeable, serialisable summaries of one window of events.

Every sketch supports ``update(values)``, ``merge(other)`` and a lossless
``to_bytes()`` / ``from_bytes()``. Merging the sketches of two partitions gives
the sketch of both fed in sequence (counts and histograms exactly, float sums
up to rounding), which is what lets several consumer replicas, and several
flushes of one replica, share a window.

>>> from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
>>> spec = ModelSpec("m", (FeatureSpec("x", FeatureKind.NUMERICAL, edges=(0.0, 1.0, 2.0)),),
...                  PredictionSpec(PredictionKind.CATEGORICAL), window_seconds=60)
>>> a, b = WindowSketch.empty(spec), WindowSketch.empty(spec)
>>> a.update(WindowBatch(2, {"x": [0.5, 1.5]}, ["yes", "no"]))
>>> b.update(WindowBatch(1, {"x": [None]}, ["yes"]))
>>> a.merge(b)
>>> a.events, a.features["x"].nulls, a.prediction.counts["yes"]
(3, 1, 2)
>>> WindowSketch.from_bytes(a.to_bytes()) == a
True

A window may also keep a bounded :class:`~drift.rowsample.RowSample` of whole
events (for exact small-window tests and for rendering reports); it is chosen
by a stable hash of each event's id, so it is the same whatever the
partitioning, flush boundaries or replays that produced it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from drift.categories import OTHER, CategoricalSketch, CategoryCaps, category_rank
from drift.errors import SketchCorrupt, SketchMismatch
from drift.histogram import EdgeLookup, Edges, LayoutEdges, NumericSketch, update_columns
from drift.rowsample import (
    RowSample,
    decode_sample,
    encode_sample,
    sample_key,
    sample_keys_below,
)
from drift.schema import FeatureKind, ModelSpec, PredictionKind

# RowSample and its encoding live in drift.rowsample, the categorical sketch in
# drift.categories, the numerical one in drift.histogram; importers of this module
# keep finding them here.
__all__ = [
    "OTHER",
    "CategoricalSketch",
    "CategoryCaps",
    "ColumnSketch",
    "EdgeLookup",
    "LayoutEdges",
    "NumericSketch",
    "RowSample",
    "Scalar",
    "WindowBatch",
    "WindowSketch",
    "category_rank",
    "decode_sample",
    "encode_sample",
    "sample_key",
    "spec_edges",
]

# Version 3 names the sketch's layout and leaves the bin edges to it; version 4 also
# stores each histogram's counts as narrow as they fit (NumericSketch.to_state).
_READABLE_VERSIONS = frozenset({1, 2, 3, 4})
Scalar = float | int | str | bool | None


ColumnSketch = NumericSketch | CategoricalSketch


def _column_from_state(state: list[Any], edges: Callable[[], Edges | None]) -> ColumnSketch:
    if state[0] == "n":
        return NumericSketch.from_state(state, edges() if state[1] is None else None)
    if state[0] == "c":
        return CategoricalSketch.from_state(state)
    raise SketchCorrupt(f"unknown column sketch kind {state[0]!r}")


@dataclass(slots=True)
class WindowBatch:
    """Column-wise values of some events of one window, ready for ``update``.

    ``event_ids`` are the events' ids, needed only when the window keeps a row sample
    (which picks events by :func:`~drift.rowsample.sample_key` of their ids).
    """

    events: int
    columns: dict[str, Sequence[Scalar] | np.ndarray]
    predictions: list[Scalar]
    event_ids: Sequence[str] | None = None


@dataclass
class WindowSketch:
    """Everything driftwatch keeps about one window of one model version."""

    events: int
    features: dict[str, ColumnSketch]
    prediction: ColumnSketch
    sample: RowSample = field(default_factory=lambda: RowSample(0), compare=False)
    # The spec's layout (""  when unknown): stored bytes may leave the edges to it.
    layout: str = field(default="", compare=False)

    @classmethod
    def empty(cls, spec: ModelSpec, caps: CategoryCaps | None = None) -> WindowSketch:
        """An empty window of ``spec``; ``caps`` bound its categorical columns."""
        caps = caps or CategoryCaps()
        features: dict[str, ColumnSketch] = {}
        for f in spec.features:
            features[f.name] = (
                NumericSketch(f.edges)
                if f.kind is FeatureKind.NUMERICAL
                else CategoricalSketch(caps=caps)
            )
        prediction: ColumnSketch = (
            NumericSketch(spec.prediction.edges)
            if spec.prediction.kind is PredictionKind.NUMERICAL
            else CategoricalSketch(caps=caps)
        )
        return cls(
            events=0,
            features=features,
            prediction=prediction,
            sample=RowSample(spec.sample_size),
            layout=spec.layout,
        )

    def update(self, batch: WindowBatch) -> None:
        self.events += batch.events
        dense: list[NumericSketch] = []
        rows: list[np.ndarray] = []
        for name, values in batch.columns.items():
            sketch = self.features[name]
            # The codec reads never-null numerical features as float arrays.
            if (
                isinstance(sketch, NumericSketch)
                and isinstance(values, np.ndarray)
                and values.dtype == np.float64
            ):
                dense.append(sketch)
                rows.append(values)
            else:
                sketch.update(values)
        if rows:
            update_columns(dense, np.stack(rows))
        self.prediction.update(batch.predictions)
        if self.sample.capacity and batch.event_ids:
            self._sample(batch)

    def _sample(self, batch: WindowBatch) -> None:
        # Once the sample is full only keys below its largest can enter, and only
        # their events' rows are built.
        picked, keys = sample_keys_below(batch.event_ids or [], self.sample.threshold)
        if not picked:
            return
        columns = [_clip(s, _pick(batch.columns[n], picked)) for n, s in self.features.items()]
        columns.append(_clip(self.prediction, _pick(batch.predictions, picked)))
        self.sample.update(keys, list(zip(*columns, strict=True)))

    def sample_frame(self) -> dict[str, list[Any]]:
        """The sampled events column-wise, features and ``prediction``."""
        names = [*self.features, "prediction"]
        return {name: self.sample.column(i) for i, name in enumerate(names)}

    def sample_bytes(self) -> bytes:
        """The row sample with its column names, for storing beside a report."""
        return encode_sample([*self.features, "prediction"], self.sample.rows)

    @property
    def sample_is_complete(self) -> bool:
        """Whether the sample holds every event of the window."""
        return self.sample.capacity > 0 and len(self.sample.rows) == self.events

    def merge(self, other: WindowSketch) -> None:
        """Add ``other`` in; raises SketchMismatch, changing nothing, if incompatible."""
        if self.features.keys() != other.features.keys():
            raise SketchMismatch("window sketches describe different features")
        for name, sketch in [*self.features.items(), ("prediction", self.prediction)]:
            theirs = other.prediction if name == "prediction" else other.features[name]
            if type(sketch) is not type(theirs) or (
                isinstance(sketch, NumericSketch)
                and isinstance(theirs, NumericSketch)
                and sketch.edges != theirs.edges
            ):
                raise SketchMismatch(f"{name}: sketches have different kinds or bin edges")
        for name, sketch in self.features.items():
            _merge_column(sketch, other.features[name])
        _merge_column(self.prediction, other.prediction)
        self.sample.merge(other.sample)
        self.events += other.events
        # A row stored before layouts were recorded learns its layout from the delta.
        self.layout = self.layout or other.layout

    def layout_edges(self) -> LayoutEdges:
        """The bin edges this sketch's layout fixes, for storing once per layout."""
        return LayoutEdges(
            {n: s.edges for n, s in self.features.items() if isinstance(s, NumericSketch)},
            self.prediction.edges if isinstance(self.prediction, NumericSketch) else None,
        )

    def to_bytes(self, *, edges: bool = True) -> bytes:
        """Lossless bytes. ``edges=False`` leaves the numerical bin edges to the
        layout (most of a row's size): :meth:`from_bytes` then needs them looked up."""
        if not edges and not self.layout:
            raise ValueError("a sketch without a layout must keep its bin edges")
        # Histograms are mostly zeros, so even the fastest zlib level halves the rows.
        return zlib.compress(msgspec.msgpack.encode(self._state(edges, self.layout)), 1)

    def _state(self, inline_edges: bool, layout: str) -> dict[str, Any]:
        # Features keep their model order: sample rows are laid out in it. With its
        # edges a sketch is written as version 2, which every release reads.
        state: dict[str, Any] = {"v": 2} if inline_edges else {"v": 4, "layout": layout}
        state["events"] = self.events
        state["features"] = [[k, _state(s, inline_edges)] for k, s in self.features.items()]
        state["prediction"] = _state(self.prediction, inline_edges)
        state["sample"] = self.sample.to_state()
        return state

    @classmethod
    def from_bytes(cls, data: bytes, edges: EdgeLookup | None = None) -> WindowSketch:
        """The sketch of ``to_bytes``; ``edges`` finds a layout's bin edges when the
        bytes left them out (looked up once, and only then)."""
        try:
            state = msgspec.msgpack.decode(zlib.decompress(data))
            if state.get("v") not in _READABLE_VERSIONS:
                raise SketchCorrupt(f"unsupported sketch format {state.get('v')!r}")
            layout = state.get("layout", "")
            known = _EdgesOf(layout, edges)
            features = state["features"]
            pairs = features.items() if isinstance(features, dict) else features
            return cls(
                events=state["events"],
                features={k: _column_from_state(s, known.feature(k)) for k, s in pairs},
                prediction=_column_from_state(state["prediction"], known.prediction),
                sample=RowSample.from_state(state.get("sample", [0, [], []])),
                layout=layout,
            )
        except (
            zlib.error,
            msgspec.DecodeError,
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            IndexError,
        ) as exc:
            raise SketchCorrupt(f"cannot decode window sketch: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WindowSketch):
            return NotImplemented
        # Equal contents are equal sketches, whether or not each knows its layout.
        encode = msgspec.msgpack.encode
        return encode(self._state(True, "")) == encode(other._state(True, ""))


def spec_edges(spec: ModelSpec) -> LayoutEdges:
    """The bin edges of ``spec``'s layout (those of its sketches' numerical columns)."""
    numerical = {f.name: f.edges for f in spec.features if f.kind is FeatureKind.NUMERICAL}
    numeric_prediction = spec.prediction.kind is PredictionKind.NUMERICAL
    return LayoutEdges(numerical, spec.prediction.edges if numeric_prediction else None)


class _EdgesOf:
    """A stored sketch's layout edges, looked up on first need."""

    def __init__(self, layout: str, lookup: EdgeLookup | None) -> None:
        self._layout, self._lookup = layout, lookup
        self._found: LayoutEdges | None = None

    def _edges(self) -> LayoutEdges:
        if self._found is None:
            if self._lookup is None or not self._layout:
                raise SketchCorrupt(
                    f"the sketch leaves its bin edges to layout {self._layout!r}, "
                    "and no lookup was given"
                )
            self._found = self._lookup(self._layout)
        return self._found

    def feature(self, name: str) -> Callable[[], Edges | None]:
        return lambda: self._edges().features.get(name)

    def prediction(self) -> Edges | None:
        return self._edges().prediction


def _state(sketch: ColumnSketch, inline_edges: bool) -> list[Any]:
    if isinstance(sketch, NumericSketch):
        return sketch.to_state(inline_edges=inline_edges)
    return sketch.to_state()


def _pick(values: Sequence[Any] | np.ndarray, picked: list[int]) -> list[Any]:
    """``values`` at ``picked`` as plain Python values (numpy scalars as numbers)."""
    if isinstance(values, np.ndarray):
        out: list[Any] = values[picked].tolist()
        return out
    # Decoded events hold plain Python values; anything numpy is made plain.
    got = list(map(values.__getitem__, picked))
    if any(isinstance(v, np.generic) for v in got[:1]):
        got = [v.item() if isinstance(v, np.generic) else v for v in got]
    return got


def _clip(sketch: ColumnSketch, values: list[Any]) -> list[Any]:
    """Sampled values of a categorical column, a value past its length cap replaced by
    the overflow bucket's name, as in the counts: the sample stays bounded too."""
    limit = sketch.caps.max_length if isinstance(sketch, CategoricalSketch) else None
    if limit is None:
        return values
    return [OTHER if isinstance(v, str) and len(v) > limit else v for v in values]


def _merge_column(target: ColumnSketch, other: ColumnSketch) -> None:
    if isinstance(target, NumericSketch) and isinstance(other, NumericSketch):
        target.merge(other)
        return
    if isinstance(target, CategoricalSketch) and isinstance(other, CategoricalSketch):
        target.merge(other)
        return
    raise SketchMismatch("cannot merge a numerical with a categorical sketch")
