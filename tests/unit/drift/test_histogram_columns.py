"""update_columns: a model's numerical columns sketched together, as each alone would be."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.histogram import SMALL_BATCH, SMALL_BLOCK, NumericSketch, bracketed, update_columns
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import WindowBatch, WindowSketch

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
# Up to 90 edges against rows of 15 to 140 values: some blocks bin by sorting the rows
# (64 values or more), some value by value.
edges_st = st.lists(finite, min_size=1, max_size=90, unique=True).map(
    lambda xs: tuple(sorted(x + 0.0 for x in xs))
)


def row(edges: tuple[float, ...], n: int, dirty: bool) -> st.SearchStrategy[list[float]]:
    value = st.one_of(st.sampled_from(edges), finite, st.floats(edges[0] - 1, edges[-1] + 1))
    if dirty:
        value = st.one_of(value, st.sampled_from([math.nan, math.inf, -math.inf]))
    return st.lists(value, min_size=n, max_size=n)


def summary(s: NumericSketch) -> tuple[object, ...]:
    return (s.count, s.nulls, s.minimum, s.maximum, s.hist.tolist())


@settings(deadline=None, max_examples=150)
@given(data=st.data())
def test_columns_updated_together_equal_each_updated_alone(data: st.DataObject) -> None:
    # Each side of both thresholds: the block's (numpy from SMALL_BLOCK + 1) and a column's.
    n = data.draw(st.integers(SMALL_BLOCK - 2, 140), label="n")
    columns = data.draw(st.integers(1, 5), label="columns")
    all_edges = [data.draw(edges_st, label=f"edges {j}") for j in range(columns)]
    block = np.array(
        [data.draw(row(e, n, data.draw(st.booleans())), label="row") for e in all_edges],
        dtype=np.float64,
    ).reshape(columns, n)
    together = [NumericSketch(e) for e in all_edges]
    alone = [NumericSketch(e) for e in all_edges]
    for _ in range(2):  # the second time onto sketches that already hold values
        update_columns(together, block)
        for sketch, values in zip(alone, block, strict=True):
            sketch.update(values)
    for t, a in zip(together, alone, strict=True):
        assert summary(t) == summary(a)
        assert t.total == pytest.approx(a.total, rel=1e-12, abs=1e-6, nan_ok=True)
        assert t.total_sq == pytest.approx(a.total_sq, rel=1e-12, abs=1e-6, nan_ok=True)


@settings(deadline=None, max_examples=150)
@given(data=st.data())
def test_a_large_batch_bins_as_values_one_by_one_do(data: st.DataObject) -> None:
    # Up to SMALL_BATCH values a sketch bins them with bisect, one by one: the oracle
    # for the numpy paths (sorted from 64 values), infinities and nulls included.
    edges = data.draw(edges_st, label="edges")
    values = data.draw(row(edges, data.draw(st.integers(SMALL_BATCH + 1, 300)), True))
    whole, few = NumericSketch(edges), NumericSketch(edges)
    whole.update(np.array(values, dtype=np.float64))
    for at in range(0, len(values), SMALL_BATCH):
        few.update(values[at : at + SMALL_BATCH])
    assert summary(whole) == summary(few)
    assert whole.total == pytest.approx(few.total, rel=1e-9, abs=1e-6, nan_ok=True)


def test_a_window_sketches_array_columns_as_it_does_lists() -> None:
    edges = tuple(float(x) for x in range(-5, 6))
    names = [f"x{j}" for j in range(4)]
    spec = ModelSpec(
        name="m",
        window_seconds=60,
        features=[FeatureSpec(n, FeatureKind.NUMERICAL, edges=edges) for n in names],
        prediction=PredictionSpec(PredictionKind.NUMERICAL, edges=edges),
    )
    rng = np.random.default_rng(7)
    block = rng.normal(0, 3, (4, 200))
    block[2, 17] = math.nan
    arrays, lists = WindowSketch.empty(spec), WindowSketch.empty(spec)
    predictions = rng.normal(0, 3, 200).tolist()
    arrays.update(WindowBatch(200, dict(zip(names, block, strict=True)), predictions))
    lists.update(WindowBatch(200, {k: v.tolist() for k, v in zip(names, block, strict=True)},
                             predictions))  # fmt: skip
    for name in names:
        assert summary(arrays.features[name]) == summary(lists.features[name])
        assert arrays.features[name].total == pytest.approx(lists.features[name].total)
    assert arrays.features["x2"].nulls == 1


def test_the_sketches_of_one_edges_tuple_share_its_binning_array() -> None:
    """A window row's numerical sketches share their layout's edges, and so does every
    row of the layout: the array binning needs is made once per tuple, read-only, and
    an equal tuple of its own gets an equal array of its own."""
    edges = tuple(float(x) for x in range(590))
    first, second = NumericSketch(edges), NumericSketch(edges)
    first.update(np.arange(100.0))
    second.update(np.arange(100.0) + 0.5)
    assert first._bracketed_edges() is second._bracketed_edges() is bracketed(edges)
    with pytest.raises(ValueError, match="read-only"):
        bracketed(edges)[1] = 7.0
    twin = tuple(float(x) for x in range(590))
    assert bracketed(twin) is not bracketed(edges)
    assert np.array_equal(bracketed(twin), bracketed(edges))
    assert bracketed(edges)[[0, 1, -2, -1]].tolist() == [-math.inf, 0.0, 589.0, math.inf]
    assert first.hist[1:101].tolist() == [1] * 100 and second.hist[1:101].tolist() == [1] * 100
