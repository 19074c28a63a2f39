"""The reference profile: what drift tests need to remember about training data.

Per numerical feature a :class:`NumericalProfile` keeps quantile bin edges
(the reference's own :class:`~drift.sketch.NumericSketch` on them), the
population standard deviation, the distinct values when there are at most 20,
and a seeded uniform sample of at most ``sample_size`` values. Per categorical
feature a :class:`CategoricalProfile` keeps the category counts and a sample.
Current windows are summarised on the same edges by :func:`current_sketch`, so
a window sketch and the profile can be compared bucket by bucket.

Edges (see :mod:`drift.edges`) are sample quantiles in the body, the data's own
order statistics in the tails and a few steps past the extremes, or one bucket
per value for discrete features; values heavy enough to fill a bucket alone
(point masses) get one of their own. With the default 500 body buckets the
binned Kolmogorov-Smirnov statistic and normed Wasserstein distance stay within
0.01 of the exact ones on normal, lognormal and bimodal data and on columns with
20-60% of their mass on a few values; for any data the Wasserstein error is at
most :func:`drift.stats.numerical.wasserstein_binned_bound`.

>>> rng = np.random.default_rng(0)
>>> ref = {"x": rng.normal(size=2000), "colour": ["red", "blue"] * 1000}
>>> profile = ReferenceProfile.from_columns(ref, {"x": "numerical", "colour": "categorical"})
>>> x, colour = profile.features["x"], profile.features["colour"]
>>> profile.rows, len(x.edges) > 100, sorted(colour.categories)
(2000, True, ['blue', 'red'])
>>> ReferenceProfile.from_bytes(profile.to_bytes()) == profile
True
>>> window = current_sketch(profile, {"x": [0.1, None], "colour": ["red", "green"]})
>>> x, colour = window.features["x"], window.features["colour"]
>>> x.count, x.nulls, colour.counts["green"]
(1, 1, 1)
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from drift import columns as col
from drift.binning import MIN_VALUES_FOR_GRID, HistogramBatch, thinned
from drift.edges import numeric_edges
from drift.errors import ProfileMismatch, SketchCorrupt
from drift.features import (
    CategoricalProfile,
    FeatureProfile,
    NumericalProfile,
    edges_of,
    feature_from_state,
    feature_state,
)
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import CategoricalSketch, NumericSketch, WindowSketch

# The feature profiles live in drift.features; importers of this module keep
# finding them here.
__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_SAMPLE_SIZE",
    "CategoricalProfile",
    "CurrentColumn",
    "FeatureProfile",
    "NumericalProfile",
    "ReferenceProfile",
    "align_spec",
    "current_columns",
    "current_sketch",
    "profile_columns",
    "profile_feature",
    "summarise",
]

FloatArray = npt.NDArray[np.float64]

_FORMAT_VERSION = 1
DEFAULT_BINS = 500
DEFAULT_SAMPLE_SIZE = 5_000


@dataclass(frozen=True, eq=False)
class ReferenceProfile:
    """Every feature of a reference data set, ready to be compared with windows."""

    features: Mapping[str, FeatureProfile]
    rows: int
    bins: int = DEFAULT_BINS
    sample_size: int = DEFAULT_SAMPLE_SIZE
    seed: int = 0

    @classmethod
    def from_columns(
        cls,
        columns: Mapping[str, Any],
        kinds: Mapping[str, FeatureKind | str],
        *,
        bins: int = DEFAULT_BINS,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        seed: int = 0,
    ) -> ReferenceProfile:
        """Profile the columns named in ``kinds`` (all of equal length)."""
        features, _ = profile_columns(columns, kinds, None, bins, sample_size, seed)
        rows = max((len(columns[name]) for name in kinds), default=0)
        return cls(features, rows, bins, sample_size, seed)

    def feature_specs(self) -> tuple[FeatureSpec, ...]:
        """Feature specs whose window sketches line up with this profile."""
        return tuple(
            FeatureSpec(f.name, f.kind, nullable=f.nulls > 0, edges=edges_of(f))
            for f in self.features.values()
        )

    def to_bytes(self) -> bytes:
        state = {
            "v": _FORMAT_VERSION,
            "rows": self.rows,
            "bins": self.bins,
            "sample_size": self.sample_size,
            "seed": self.seed,
            "features": [feature_state(f) for f in self.features.values()],
        }
        return zlib.compress(msgspec.msgpack.encode(state), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        try:
            state = msgspec.msgpack.decode(zlib.decompress(data))
            if state.get("v") != _FORMAT_VERSION:
                raise SketchCorrupt(f"unsupported profile format {state.get('v')!r}")
            features = [feature_from_state(s) for s in state["features"]]
            return cls(
                {f.name: f for f in features},
                state["rows"],
                state["bins"],
                state["sample_size"],
                state["seed"],
            )
        except (zlib.error, msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise SketchCorrupt(f"cannot decode reference profile: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReferenceProfile):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()


@dataclass(frozen=True)
class CurrentColumn:
    """A current window's summary of one feature, with its exact values when known."""

    sketch: NumericSketch | CategoricalSketch
    values: FloatArray | None = None


def profile_feature(
    name: str,
    column: Any,
    kind: FeatureKind | str,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> FeatureProfile:
    """Profile one reference column."""
    features, _ = profile_columns({name: column}, {name: kind}, None, bins, sample_size, seed)
    return features[name]


def profile_columns(
    columns: Mapping[str, Any],
    kinds: Mapping[str, FeatureKind | str],
    current: Mapping[str, Any] | None = None,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> tuple[dict[str, FeatureProfile], dict[str, CurrentColumn]]:
    """Profile the reference columns named in ``kinds``; summarise ``current`` on them.

    The summaries are empty when ``current`` is None.
    """
    if bins < 1 or sample_size < 1:
        raise ValueError("bins and sample_size must be positive")
    features: dict[str, FeatureProfile] = {}
    summaries: dict[str, CurrentColumn] = {}

    def numerical(name: str, binning: _Binning) -> None:
        feature = _numerical(name, columns[name], bins, sample_size, _rng(seed, name), binning)
        features[name] = feature
        if current is not None:
            summaries[name] = _numeric_current(feature, current[name], binning)

    def categorical(name: str) -> None:
        features[name] = _categorical(name, columns[name], sample_size, _rng(seed, name))
        if current is not None:
            summaries[name] = _categorical_current(current[name])

    _by_kind({n: FeatureKind(k) for n, k in kinds.items()}, numerical, categorical)
    ordered = {n: summaries[n] for n in kinds} if current is not None else {}
    return {n: features[n] for n in kinds}, ordered


def summarise(feature: FeatureProfile, column: Any) -> CurrentColumn:
    """One current column on the feature's edges, keeping its exact values."""
    return _summarise({feature.name: feature}, {feature.name: column})[feature.name]


def current_columns(
    profile: ReferenceProfile, columns: Mapping[str, Any]
) -> dict[str, CurrentColumn]:
    """Summaries of the current columns on the profile's edges, keeping exact values."""
    missing = sorted(set(profile.features) - set(columns))
    if missing:
        raise ValueError(f"the current data lacks features {missing}")
    return _summarise(profile.features, columns)


def current_sketch(
    profile: ReferenceProfile, columns: Mapping[str, Any], events: int | None = None
) -> WindowSketch:
    """The window sketch of column data on the profile's edges (prediction left empty).

    ``events`` defaults to the length of the longest column.
    """
    summaries = current_columns(profile, columns)
    rows = max((len(columns[n]) for n in profile.features), default=0)
    return WindowSketch(
        events=rows if events is None else events,
        features={name: c.sketch for name, c in summaries.items()},
        prediction=CategoricalSketch(),
    )


def _summarise(
    features: Mapping[str, FeatureProfile], columns: Mapping[str, Any]
) -> dict[str, CurrentColumn]:
    out: dict[str, CurrentColumn] = {}

    def numerical(name: str, binning: _Binning) -> None:
        feature = features[name]
        assert isinstance(feature, NumericalProfile)
        out[name] = _numeric_current(feature, columns[name], binning)

    def categorical(name: str) -> None:
        out[name] = _categorical_current(columns[name])

    _by_kind({n: f.kind for n, f in features.items()}, numerical, categorical)
    return {n: out[n] for n in features}


class _Binning:
    """Histograms queued for one compiled call, and the sketches they fill."""

    def __init__(self) -> None:
        self.batch = HistogramBatch()
        self._targets: list[tuple[NumericSketch, int]] = []

    def queue(self, sketch: NumericSketch, feature: NumericalProfile, x: FloatArray) -> None:
        self._targets.append((sketch, feature.queue_histogram(self.batch, x)))

    def fill(self, results: list[npt.NDArray[np.int64]]) -> None:
        for sketch, slot in self._targets:
            sketch.hist = results[slot]


def _by_kind(
    kinds: Mapping[str, FeatureKind],
    numerical: Callable[[str, _Binning], None],
    categorical: Callable[[str], None],
) -> None:
    """Prepare the numerical features, then count the categorical ones.

    The numerical histograms are binned on the worker thread meanwhile: counting
    categories needs the GIL, binning does not.
    """
    binning = _Binning()
    for name, kind in kinds.items():
        if kind is FeatureKind.NUMERICAL:
            numerical(name, binning)
    wait = binning.batch.start()
    try:
        for name, kind in kinds.items():
            if kind is not FeatureKind.NUMERICAL:
                categorical(name)
    finally:
        results = wait()
    binning.fill(results)


def _rng(seed: int, name: str) -> np.random.Generator:
    # Seeded per feature name, so a feature's sample does not depend on the others.
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _numerical(
    name: str,
    column: Any,
    bins: int,
    sample_size: int,
    rng: np.random.Generator,
    binning: _Binning,
) -> NumericalProfile:
    scan = col.scan_numeric(column)
    x, n = scan.values, scan.count
    picked = x if n <= sample_size else x[rng.choice(n, sample_size, replace=False)]
    sample = np.sort(picked)
    std = scan.std()
    edges, values = numeric_edges(x, sample, bins, std)
    if values is None and n >= MIN_VALUES_FOR_GRID:
        edges = thinned(edges, (scan.minimum, scan.maximum))
    sketch = _moments(NumericSketch(tuple(edges.tolist())), scan)
    profile = NumericalProfile(
        name,
        sketch,
        std,
        sample,
        None if values is None else tuple(values.tolist()),
        _cache={"edges": np.ascontiguousarray(edges, dtype=np.float64)},
    )
    # Queued last: the grid is laid out over the extremes just set.
    binning.queue(sketch, profile, x)
    return profile


def _numeric_current(feature: NumericalProfile, column: Any, binning: _Binning) -> CurrentColumn:
    scan = col.scan_numeric(column)
    sketch = _moments(NumericSketch(feature.edges), scan)
    if scan.count:
        binning.queue(sketch, feature, scan.values)
    return CurrentColumn(sketch, scan.values)


def _categorical_current(column: Any) -> CurrentColumn:
    counts, nulls = col.category_counts(column)
    return CurrentColumn(CategoricalSketch(counts, nulls))


def _moments(sketch: NumericSketch, scan: col.NumericScan) -> NumericSketch:
    sketch.nulls = scan.nulls
    if scan.count:
        sketch.count = scan.count
        sketch.total = scan.total
        sketch.total_sq = scan.total_sq
        sketch.minimum = scan.minimum
        sketch.maximum = scan.maximum
    return sketch


def _categorical(
    name: str, column: Any, sample_size: int, rng: np.random.Generator
) -> CategoricalProfile:
    counts, nulls = col.category_counts(column)
    n = len(column)
    rows = None if n <= sample_size else np.sort(rng.choice(n, sample_size, replace=False))
    return CategoricalProfile(
        name, CategoricalSketch(counts, nulls), col.category_sample(column, rows)
    )


def align_spec(
    spec: ModelSpec, features: ReferenceProfile, prediction: ReferenceProfile | None = None
) -> ModelSpec:
    """``spec`` with its numerical bins replaced by the profile's edges.

    Window sketches of the returned spec line up bucket by bucket with the
    profile, so a window is judged on its sketch alone. Nullability and
    everything else stay as configured. Raises ProfileMismatch, naming the
    features, when the profile describes other features or kinds.
    """
    problems = []
    missing = sorted(set(spec.feature_index) - set(features.features))
    extra = sorted(set(features.features) - set(spec.feature_index))
    if missing:
        problems.append(f"the profile lacks features {missing}")
    if extra:
        problems.append(f"the profile has features the model lacks {extra}")
    for f in spec.features:
        ref = features.features.get(f.name)
        if ref is not None and ref.kind is not f.kind:
            problems.append(f"{f.name} is {f.kind} in the model but {ref.kind} in the profile")
    if problems:
        raise ProfileMismatch(f"model {spec.name!r}: " + "; ".join(problems))
    aligned = tuple(
        dataclasses.replace(f, edges=edges_of(features.features[f.name]))
        if f.kind is FeatureKind.NUMERICAL
        else f
        for f in spec.features
    )
    pred = spec.prediction
    ref_pred = None if prediction is None else prediction.features.get("prediction")
    if (
        pred.kind is PredictionKind.NUMERICAL
        and isinstance(ref_pred, NumericalProfile)
        and len(ref_pred.edges) >= 2
    ):
        pred = PredictionSpec(pred.kind, ref_pred.edges)
    return dataclasses.replace(spec, features=aligned, prediction=pred)
