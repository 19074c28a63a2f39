"""Reference profiles: edges, samples, serialisation, and window sketches on their edges."""

from __future__ import annotations

import math
import zlib

import msgspec
import numpy as np
import pytest
from scipy import stats

from drift.binning import MIN_VALUES_FOR_GRID
from drift.errors import SketchCorrupt
from drift.profile import (
    CategoricalProfile,
    NumericalProfile,
    ReferenceProfile,
    current_columns,
    current_sketch,
)
from drift.schema import FeatureKind, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import NumericSketch, WindowBatch, WindowSketch
from drift.stats import numerical

N = 100_000


def generate(kind: str, rng: np.random.Generator, n: int, drifted: bool) -> np.ndarray:
    if kind == "normal":
        return rng.normal(0.25 if drifted else 0.0, 1.0, n)
    if kind == "lognormal":
        return rng.lognormal(0.0, 1.3 if drifted else 1.0, n)
    if kind == "bimodal":
        left = rng.random(n) < (0.6 if drifted else 0.5)
        return np.where(left, rng.normal(-2.0, 0.5, n), rng.normal(3.0, 1.0, n))
    raise AssertionError(kind)


def numeric_profile(values: object, **options: int) -> NumericalProfile:
    profile = ReferenceProfile.from_columns({"x": values}, {"x": "numerical"}, **options)
    feature = profile.features["x"]
    assert isinstance(feature, NumericalProfile)
    return feature


def mixed_profile() -> ReferenceProfile:
    rng = np.random.default_rng(3)
    columns = {
        "x": np.where(rng.random(30_000) < 0.1, np.nan, rng.gamma(2.0, 3.0, 30_000)),
        "flag": rng.choice([0.0, 1.0, 2.5], 30_000),
        "colour": rng.choice(np.array(["red", "green", None], dtype=object), 30_000),
    }
    kinds = {"x": "numerical", "flag": "numerical", "colour": "categorical"}
    return ReferenceProfile.from_columns(columns, kinds)


# -- binned statistics are close to the exact ones ---------------------------------------


@pytest.mark.parametrize("kind", ["normal", "lognormal", "bimodal"])
@pytest.mark.parametrize("drifted", [False, True])
def test_binned_ks_and_wasserstein_within_a_hundredth_of_exact(kind: str, drifted: bool) -> None:
    rng = np.random.default_rng(11)
    ref, cur = generate(kind, rng, N, False), generate(kind, rng, N, drifted)
    profile = ReferenceProfile.from_columns({"x": ref}, {"x": "numerical"})
    feature = profile.features["x"]
    assert isinstance(feature, NumericalProfile)
    sketch = current_sketch(profile, {"x": cur}).features["x"]
    assert isinstance(sketch, NumericSketch)

    d, p = numerical.ks_binned(feature.sketch.hist, sketch.hist)
    exact = stats.ks_2samp(ref, cur)
    assert d == pytest.approx(exact.statistic, abs=0.01)
    w = numerical.wasserstein_binned(
        feature.edge_array,
        feature.sketch.hist,
        sketch.hist,
        (feature.sketch.minimum, feature.sketch.maximum),
        (sketch.minimum, sketch.maximum),
        feature.std,
    )
    assert w == pytest.approx(stats.wasserstein_distance(ref, cur) / ref.std(), abs=0.01)
    assert (p < 0.05) == drifted


# -- edges ---------------------------------------------------------------------------------


def test_quantile_edges_are_increasing_finite_and_bounded() -> None:
    feature = numeric_profile(np.random.default_rng(1).lognormal(size=N))
    edges = feature.edge_array
    assert np.all(np.diff(edges) > 0)
    assert np.all(np.isfinite(edges))
    # 500 body buckets, exact tails, a few edges past the extremes.
    assert 400 < len(edges) < 700
    # Equal-mass buckets in the body: none holds much more than its share.
    assert feature.sketch.hist.max() < 3 * N / 500


def test_extremes_are_edges_and_edges_reach_past_them() -> None:
    x = np.random.default_rng(2).normal(size=N)
    feature = numeric_profile(x)
    assert x.min() in feature.edges and x.max() in feature.edges
    assert feature.edges[0] < x.min() and feature.edges[-1] > x.max()


def test_fewer_bins_give_fewer_edges() -> None:
    x = np.random.default_rng(2).normal(size=N)
    assert len(numeric_profile(x, bins=50).edges) < len(numeric_profile(x).edges)


def test_discrete_feature_gets_a_bucket_per_value() -> None:
    x = np.random.default_rng(4).choice([1.0, 2.0, 7.5], N)
    feature = numeric_profile(x)
    assert feature.values == (1.0, 2.0, 7.5)
    buckets = np.searchsorted(feature.edge_array, [1.0, 2.0, 7.5], side="right")
    assert feature.sketch.hist[buckets].tolist() == [int((x == v).sum()) for v in (1.0, 2.0, 7.5)]
    assert feature.sketch.hist.sum() == N


def test_constant_column_has_valid_edges() -> None:
    feature = numeric_profile([4.0] * 50)
    assert feature.values == (4.0,)
    assert len(feature.edges) == 2 and feature.edges[0] == 4.0 < feature.edges[1]
    assert feature.std == 0.0


@pytest.mark.parametrize("values", [[], [None, None, float("nan")]])
def test_empty_or_all_null_column_profiles(values: list[object]) -> None:
    feature = numeric_profile(values)
    assert feature.count == 0 and feature.nulls == len(values)
    assert len(feature.edges) >= 2
    profile = ReferenceProfile.from_columns({"x": values}, {"x": "numerical"})
    profile.feature_specs()  # FeatureSpec validates the edges


# -- histograms agree with NumericSketch.update ---------------------------------------------


@pytest.mark.parametrize("n", [1000, N])
def test_fast_histograms_equal_numeric_sketch_updates(n: int) -> None:
    rng = np.random.default_rng(5)
    ref = np.round(rng.lognormal(size=n), 3)  # ties, and values exactly on edges
    feature = numeric_profile(ref)
    cur = np.concatenate((np.round(rng.lognormal(0.5, 1.2, n), 3), feature.edge_array))
    # The large case must take the grid path (small inputs use a binary search).
    assert n < MIN_VALUES_FOR_GRID or feature._grid() is not None
    expected = NumericSketch(feature.edges)
    expected.update(ref)
    assert feature.sketch.hist.tolist() == expected.hist.tolist()
    expected = NumericSketch(feature.edges)
    expected.update(cur)
    assert feature.histogram(cur).tolist() == expected.hist.tolist()


def test_sketch_from_columns_equals_sketch_fed_by_batches() -> None:
    profile = mixed_profile()
    spec = ModelSpec("m", profile.feature_specs(), PredictionSpec(PredictionKind.CATEGORICAL), 60)
    rng = np.random.default_rng(6)
    columns = {
        "x": [None, *rng.gamma(2.0, 3.5, 999).tolist()],
        "flag": rng.choice([0.0, 1.0, 3.0], 1000).tolist(),
        "colour": rng.choice(np.array(["red", "blue", None], dtype=object), 1000).tolist(),
    }
    fed = WindowSketch.empty(spec)
    fed.update(WindowBatch(1000, columns, []))
    built = current_sketch(profile, columns)
    for name in columns:
        assert built.features[name].to_state() == fed.features[name].to_state(), name
    assert built.events == 1000


def test_window_sketches_on_profile_edges_merge_like_one_window() -> None:
    profile = mixed_profile()
    rng = np.random.default_rng(7)
    data = {
        "x": rng.gamma(2.0, 3.0, 4000),
        "flag": rng.choice([0.0, 1.0], 4000),
        "colour": rng.choice(np.array(["red", "green"], dtype=object), 4000),
    }
    first = current_sketch(profile, {k: v[:1500] for k, v in data.items()})
    second = current_sketch(profile, {k: v[1500:] for k, v in data.items()})
    first.merge(second)
    whole = current_sketch(profile, data)
    assert first.events == whole.events == 4000
    for name in data:
        a, b = first.features[name].to_state(), whole.features[name].to_state()
        if name == "x":  # float sums agree up to rounding, counts exactly
            assert a[:4] == b[:4] and a[6:] == b[6:]
            assert a[4] == pytest.approx(b[4]) and a[5] == pytest.approx(b[5])
        else:
            assert a == b


# -- samples ------------------------------------------------------------------------------


def test_sample_is_bounded_sorted_and_drawn_from_the_data() -> None:
    x = np.random.default_rng(8).normal(size=N)
    feature = numeric_profile(x, sample_size=2000)
    assert feature.sample.size == 2000
    assert np.all(np.diff(feature.sample) >= 0)
    assert np.isin(feature.sample, x).all()
    assert not feature.holds_all


def test_small_reference_is_held_whole() -> None:
    x = np.random.default_rng(9).normal(size=700)
    feature = numeric_profile(x)
    assert feature.holds_all
    assert feature.sample.tolist() == sorted(x.tolist())


def test_sample_is_seeded_and_independent_of_other_columns() -> None:
    x = np.random.default_rng(10).normal(size=20_000)
    alone = ReferenceProfile.from_columns({"x": x}, {"x": "numerical"}, seed=1)
    with_other = ReferenceProfile.from_columns(
        {"y": x * 2, "x": x}, {"y": "numerical", "x": "numerical"}, seed=1
    )
    again = ReferenceProfile.from_columns({"x": x}, {"x": "numerical"}, seed=1)
    other_seed = ReferenceProfile.from_columns({"x": x}, {"x": "numerical"}, seed=2)

    def sample(p: ReferenceProfile) -> list[float]:
        feature = p.features["x"]
        assert isinstance(feature, NumericalProfile)
        return feature.sample.tolist()

    assert sample(alone) == sample(with_other) == sample(again) != sample(other_seed)


def test_categorical_profile_counts_nulls_and_samples_text() -> None:
    values = ["a", None, "b", "a", float("nan"), 3, True] * 1000
    profile = ReferenceProfile.from_columns({"c": values}, {"c": "categorical"}, sample_size=500)
    feature = profile.features["c"]
    assert isinstance(feature, CategoricalProfile)
    assert dict(feature.sketch.counts) == {"a": 2000, "b": 1000, "3": 1000, "True": 1000}
    assert feature.nulls == 2000
    assert feature.categories == {"a", "b", "3", "True"}
    assert 0 < len(feature.sample) <= 500
    assert set(feature.sample) <= feature.categories


def test_infinities_count_as_missing() -> None:
    feature = numeric_profile([1.0, math.inf, -math.inf, 2.0, None] * 20)
    assert (feature.count, feature.nulls) == (40, 60)


# -- serialisation ----------------------------------------------------------------------------


def test_round_trip_is_lossless() -> None:
    profile = mixed_profile()
    back = ReferenceProfile.from_bytes(profile.to_bytes())
    assert back == profile
    assert (back.rows, back.bins, back.sample_size, back.seed) == (30_000, 500, 5000, 0)
    for name, feature in profile.features.items():
        other = back.features[name]
        assert type(other) is type(feature)
        if isinstance(feature, NumericalProfile):
            assert isinstance(other, NumericalProfile)
            assert other.edges == feature.edges
            assert other.sketch == feature.sketch
            assert other.std == feature.std
            assert other.values == feature.values
            assert other.sample.tobytes() == feature.sample.tobytes()
        else:
            assert isinstance(other, CategoricalProfile)
            assert other.sketch.counts == feature.sketch.counts
            assert other.sample == feature.sample


def test_round_tripped_profile_sketches_the_same_windows() -> None:
    profile = mixed_profile()
    back = ReferenceProfile.from_bytes(profile.to_bytes())
    window = {"x": np.arange(20_000.0), "flag": np.ones(20_000), "colour": ["red"] * 20_000}
    assert current_sketch(back, window) == current_sketch(profile, window)


def test_profile_equality_against_other_types() -> None:
    assert mixed_profile().__eq__(object()) is NotImplemented


@pytest.mark.parametrize(
    "data",
    [
        b"not a profile",
        zlib.compress(msgspec.msgpack.encode({"v": 99})),
        zlib.compress(msgspec.msgpack.encode({"v": 1, "rows": 1})),
        zlib.compress(
            msgspec.msgpack.encode(
                {
                    "v": 1,
                    "rows": 1,
                    "bins": 1,
                    "sample_size": 1,
                    "seed": 0,
                    "features": [["x", ["q"]]],
                }
            )
        ),
    ],
)
def test_corrupt_bytes_raise_sketch_corrupt(data: bytes) -> None:
    with pytest.raises(SketchCorrupt):
        ReferenceProfile.from_bytes(data)


def test_feature_specs_carry_kinds_edges_and_nullability() -> None:
    specs = {s.name: s for s in mixed_profile().feature_specs()}
    assert specs["x"].kind is FeatureKind.NUMERICAL and specs["x"].nullable
    assert specs["colour"].kind is FeatureKind.CATEGORICAL and specs["colour"].edges == ()
    assert not specs["flag"].nullable


def test_current_columns_require_every_feature() -> None:
    with pytest.raises(ValueError, match="lacks features"):
        current_columns(mixed_profile(), {"x": [1.0]})
