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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from drift.categories import OTHER, CategoricalSketch, CategoryCaps, category_rank
from drift.errors import SketchCorrupt, SketchMismatch
from drift.rowsample import RowSample, decode_sample, encode_sample, sample_key
from drift.schema import FeatureKind, ModelSpec, PredictionKind

# RowSample and its encoding live in drift.rowsample, the categorical sketch in
# drift.categories; importers of this module keep finding them here.
__all__ = [
    "OTHER",
    "CategoricalSketch",
    "CategoryCaps",
    "ColumnSketch",
    "NumericSketch",
    "RowSample",
    "Scalar",
    "WindowBatch",
    "WindowSketch",
    "category_rank",
    "decode_sample",
    "encode_sample",
    "sample_key",
]

_FORMAT_VERSION = 2
_READABLE_VERSIONS = frozenset({1, 2})
Scalar = float | int | str | bool | None


@dataclass
class NumericSketch:
    """Moments and a fixed-edge histogram of one numerical column.

    ``hist`` has ``len(edges) + 1`` buckets: ``hist[0]`` counts values below
    ``edges[0]``, ``hist[-1]`` values at or above ``edges[-1]``, and
    ``hist[i]`` values in ``[edges[i-1], edges[i])``.
    """

    edges: tuple[float, ...]
    count: int = 0
    nulls: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if self.hist.size == 0:
            self.hist = np.zeros(len(self.edges) + 1, dtype=np.int64)

    def update(self, values: Sequence[Any] | np.ndarray) -> None:
        # None becomes NaN under a float dtype, so nulls are counted with one pass.
        arr = np.asarray(values, dtype=np.float64)
        if arr.size == 0:
            return
        missing = np.isnan(arr)
        n_missing = int(missing.sum())
        if n_missing:
            self.nulls += n_missing
            arr = arr[~missing]
            if arr.size == 0:
                return
        self.count += int(arr.size)
        self.total += float(arr.sum())
        self.total_sq += float(np.dot(arr, arr))
        self.minimum = min(self.minimum, float(arr.min()))
        self.maximum = max(self.maximum, float(arr.max()))
        idx = np.searchsorted(np.asarray(self.edges), arr, side="right")
        self.hist += np.bincount(idx, minlength=self.hist.size)

    def merge(self, other: NumericSketch) -> None:
        if other.edges != self.edges:
            raise SketchMismatch("numeric sketches have different bin edges")
        self.count += other.count
        self.nulls += other.nulls
        self.total += other.total
        self.total_sq += other.total_sq
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.hist += other.hist

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def variance(self) -> float | None:
        """Population variance from the moment sums (None when empty)."""
        if not self.count:
            return None
        mean = self.total / self.count
        return max(self.total_sq / self.count - mean * mean, 0.0)

    def to_state(self) -> list[Any]:
        return [
            "n",
            list(self.edges),
            self.count,
            self.nulls,
            self.total,
            self.total_sq,
            self.minimum,
            self.maximum,
            self.hist.astype("<i8").tobytes(),
        ]

    @classmethod
    def from_state(cls, state: list[Any]) -> NumericSketch:
        _, edges, count, nulls, total, total_sq, lo, hi, hist = state
        return cls(
            edges=tuple(edges),
            count=count,
            nulls=nulls,
            total=total,
            total_sq=total_sq,
            minimum=lo,
            maximum=hi,
            hist=np.frombuffer(hist, dtype="<i8").astype(np.int64),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericSketch):
            return NotImplemented
        return self.to_state() == other.to_state()


ColumnSketch = NumericSketch | CategoricalSketch


def _column_from_state(state: list[Any]) -> ColumnSketch:
    if state[0] == "n":
        return NumericSketch.from_state(state)
    if state[0] == "c":
        return CategoricalSketch.from_state(state)
    raise SketchCorrupt(f"unknown column sketch kind {state[0]!r}")


@dataclass(slots=True)
class WindowBatch:
    """Column-wise values of some events of one window, ready for ``update``.

    ``keys`` are the events' :func:`~drift.rowsample.sample_key` values, needed only when the
    window keeps a row sample.
    """

    events: int
    columns: dict[str, Sequence[Scalar] | np.ndarray]
    predictions: list[Scalar]
    keys: list[int] | None = None


@dataclass
class WindowSketch:
    """Everything driftwatch keeps about one window of one model version."""

    events: int
    features: dict[str, ColumnSketch]
    prediction: ColumnSketch
    sample: RowSample = field(default_factory=lambda: RowSample(0), compare=False)

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
        )

    def update(self, batch: WindowBatch) -> None:
        self.events += batch.events
        for name, values in batch.columns.items():
            self.features[name].update(values)
        self.prediction.update(batch.predictions)
        if self.sample.capacity and batch.keys:
            self._sample(batch)

    def _sample(self, batch: WindowBatch) -> None:
        keys, limit = batch.keys or [], self.sample.threshold
        # Once the sample is full only keys below its largest can enter; this
        # filter keeps the per-event cost to one comparison.
        if limit is None:
            picked = list(range(len(keys)))
        else:
            picked = [i for i, k in enumerate(keys) if k < limit]
        if not picked:
            return
        columns = [_clip(s, _pick(batch.columns[n], picked)) for n, s in self.features.items()]
        columns.append(_clip(self.prediction, _pick(batch.predictions, picked)))
        self.sample.update([keys[i] for i in picked], list(zip(*columns, strict=True)))

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

    def to_bytes(self) -> bytes:
        # Features keep their model order: sample rows are laid out in it.
        state = {
            "v": _FORMAT_VERSION,
            "events": self.events,
            "features": [[k, s.to_state()] for k, s in self.features.items()],
            "prediction": self.prediction.to_state(),
            "sample": self.sample.to_state(),
        }
        # Histograms are mostly zeros, so even the fastest zlib level halves the rows.
        return zlib.compress(msgspec.msgpack.encode(state), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> WindowSketch:
        try:
            state = msgspec.msgpack.decode(zlib.decompress(data))
            if state.get("v") not in _READABLE_VERSIONS:
                raise SketchCorrupt(f"unsupported sketch format {state.get('v')!r}")
            features = state["features"]
            pairs = features.items() if isinstance(features, dict) else features
            return cls(
                events=state["events"],
                features={k: _column_from_state(s) for k, s in pairs},
                prediction=_column_from_state(state["prediction"]),
                sample=RowSample.from_state(state.get("sample", [0, [], []])),
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
        return self.to_bytes() == other.to_bytes()


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
