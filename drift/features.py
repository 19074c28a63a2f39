"""The reference profile of one feature, numerical or categorical, and its stored form.

A :class:`NumericalProfile` keeps the reference's :class:`~drift.sketch.NumericSketch`
on its bin edges, the population standard deviation, the distinct values when
there are few, and a sorted sample; a :class:`CategoricalProfile` keeps the
category counts and a sample. :mod:`drift.profile` builds them and gathers them
into a :class:`~drift.profile.ReferenceProfile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from drift.binning import MIN_VALUES_FOR_GRID, EdgeIndex, HistogramBatch
from drift.errors import SketchCorrupt
from drift.schema import FeatureKind
from drift.sketch import CategoricalSketch, NumericSketch

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class NumericalProfile:
    """One numerical feature of the reference. ``sample`` is sorted."""

    name: str
    sketch: NumericSketch
    std: float
    sample: FloatArray
    values: tuple[float, ...] | None = None
    kind: ClassVar[FeatureKind] = FeatureKind.NUMERICAL
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def edges(self) -> tuple[float, ...]:
        return self.sketch.edges

    @property
    def edge_array(self) -> FloatArray:
        if "edges" not in self._cache:
            self._cache["edges"] = np.asarray(self.sketch.edges, dtype=np.float64)
        arr: FloatArray = self._cache["edges"]
        return arr

    @property
    def count(self) -> int:
        return self.sketch.count

    @property
    def nulls(self) -> int:
        return self.sketch.nulls

    @property
    def holds_all(self) -> bool:
        """Whether ``sample`` is every non-null reference value, not a subset."""
        return self.sample.size == self.sketch.count

    def histogram(self, x: FloatArray) -> npt.NDArray[np.int64]:
        """Bucket counts of finite values ``x`` on the profile's edges."""
        batch = HistogramBatch()
        self.queue_histogram(batch, x)
        return batch.run()[0]

    def queue_histogram(self, batch: HistogramBatch, x: FloatArray) -> int:
        """Add the histogram of finite ``x`` to ``batch``; returns its slot."""
        index = self._grid() if x.size >= MIN_VALUES_FOR_GRID else None
        return batch.add(self.edge_array, x, index)

    def _grid(self) -> EdgeIndex | None:
        if "grid" not in self._cache:
            # The grid covers the reference's range, not the edges reaching past it.
            span = (self.sketch.minimum, self.sketch.maximum)
            grid = EdgeIndex(self.edge_array, span=span if span[0] < span[1] else None)
            self._cache["grid"] = grid if grid.worthwhile(self.sample) else None
        found: EdgeIndex | None = self._cache["grid"]
        return found


@dataclass(frozen=True, eq=False)
class CategoricalProfile:
    """One categorical feature of the reference; categories are kept as text."""

    name: str
    sketch: CategoricalSketch
    sample: tuple[str, ...]
    kind: ClassVar[FeatureKind] = FeatureKind.CATEGORICAL

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(self.sketch.counts)

    @property
    def count(self) -> int:
        return self.sketch.count

    @property
    def nulls(self) -> int:
        return self.sketch.nulls


FeatureProfile = NumericalProfile | CategoricalProfile


def edges_of(feature: FeatureProfile) -> tuple[float, ...]:
    return feature.edges if isinstance(feature, NumericalProfile) else ()


def feature_state(f: FeatureProfile) -> list[Any]:
    if isinstance(f, NumericalProfile):
        values = None if f.values is None else list(f.values)
        return [f.name, f.sketch.to_state(), f.std, values, f.sample.astype("<f8").tobytes()]
    return [f.name, f.sketch.to_state(), list(f.sample)]


def feature_from_state(state: list[Any]) -> FeatureProfile:
    name, sketch_state = state[0], state[1]
    if sketch_state[0] == "n":
        _, _, std, values, sample = state
        return NumericalProfile(
            name,
            NumericSketch.from_state(sketch_state),
            std,
            np.frombuffer(sample, dtype="<f8").astype(np.float64),
            None if values is None else tuple(values),
        )
    if sketch_state[0] == "c":
        return CategoricalProfile(name, CategoricalSketch.from_state(sketch_state), tuple(state[2]))
    raise SketchCorrupt(f"unknown feature kind {sketch_state[0]!r}")
