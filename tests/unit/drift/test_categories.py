"""Capped categorical sketches: bounded, counted, and still exactly mergeable."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.categories import OTHER, CategoricalSketch, CategoryCaps, category_rank
from drift.compare import compare_categorical
from drift.evaluate import evaluate
from drift.profile import ReferenceProfile
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import WindowBatch, WindowSketch

PROPERTY = settings(deadline=None, max_examples=200)

# Few enough distinct values that the caps below bite, long ones included.
value = st.one_of(
    st.none(),
    st.sampled_from(["a", "b", "c", "", OTHER, "de", "fr", "é", "\ud800"]),
    st.text(max_size=6),
)
parts_st = st.lists(st.lists(value, max_size=20), min_size=1, max_size=5)
caps_st = st.builds(
    CategoryCaps,
    st.one_of(st.none(), st.integers(1, 6)),
    st.one_of(st.none(), st.integers(1, 4)),
)


def fed(caps: CategoryCaps, *parts: list[Any]) -> CategoricalSketch:
    s = CategoricalSketch(caps=caps)
    for p in parts:
        s.update(p)
    return s


def expected(caps: CategoryCaps, values: list[Any]) -> tuple[dict[str, int], int, int]:
    """The kept counts, ``other`` and nulls the docstring promises, computed directly."""
    present = Counter(v for v in values if v is not None)
    fits = [v for v in present if caps.max_length is None or len(v) <= caps.max_length]
    kept = sorted(fits, key=category_rank)[: caps.max_values]
    other = sum(present.values()) - sum(present[v] for v in kept)
    return {v: present[v] for v in kept}, other, values.count(None)


@PROPERTY
@given(parts=parts_st, caps=caps_st, seed=st.integers(0, 2**32 - 1))
def test_merge_in_any_order_and_grouping_equals_the_sketch_of_the_whole(
    parts: list[list[Any]], caps: CategoryCaps, seed: int
) -> None:
    whole = [v for p in parts for v in p]
    sketches = [fed(caps, p) for p in parts]
    random.Random(seed).shuffle(sketches)
    # Merged pairwise in a shuffled tree, as flushes and partitions combine them.
    while len(sketches) > 1:
        a, b = sketches.pop(), sketches.pop()
        a.merge(b)
        sketches.insert(random.Random(seed).randrange(len(sketches) + 1), a)
    (merged,) = sketches
    assert merged == fed(caps, whole)
    assert merged.to_state() == fed(caps, *parts).to_state()
    counts, other, nulls = expected(caps, whole)
    assert (dict(merged.counts), merged.other, merged.nulls) == (counts, other, nulls)
    assert merged.count == len(whole) - nulls  # nothing is lost, only bucketed


@PROPERTY
@given(parts=parts_st, a=caps_st, b=caps_st)
def test_merging_sketches_of_different_caps_applies_the_tighter(
    parts: list[list[Any]], a: CategoryCaps, b: CategoryCaps
) -> None:
    def tighter(x: int | None, y: int | None) -> int | None:
        return y if x is None else x if y is None else min(x, y)

    first, rest = parts[0], [v for p in parts[1:] for v in p]
    left, right = fed(a, first), fed(b, rest)
    left.merge(right)
    both = CategoryCaps(tighter(a.max_values, b.max_values), tighter(a.max_length, b.max_length))
    assert left == fed(both, first + rest)


@PROPERTY
@given(parts=parts_st, caps=caps_st)
def test_a_capped_sketch_survives_bytes_and_keeps_its_caps(
    parts: list[list[Any]], caps: CategoryCaps
) -> None:
    s = fed(caps, *parts)
    back = CategoricalSketch.from_state(s.to_state())
    assert back == s
    # The restored sketch goes on applying the caps (its ceiling rebuilt).
    more = ["zz", "y", "xxxxx", "b"]
    back.update(more)
    assert back == fed(caps, *parts, more)


def test_a_million_distinct_values_keep_the_cap_and_count_the_rest() -> None:
    caps = CategoryCaps(max_values=100, max_length=12)
    s = CategoricalSketch(caps=caps)
    for batch in range(100):
        s.update([f"v{batch}-{i}" for i in range(10_000)])
    s.update(["x" * 13, "x" * 12])
    assert len(s.counts) == 100
    assert all(len(v) <= 12 for v in s.counts)
    assert s.count == 1_000_002
    assert s.other == 1_000_002 - 100


def test_uncapped_sketches_keep_the_state_format_of_earlier_releases() -> None:
    s = CategoricalSketch()
    s.update(["de", "fr", "de", None])
    assert s.to_state() == ["c", {"de": 2, "fr": 1}, 1]
    assert CategoricalSketch.from_state(["c", {"de": 2}, 0]).caps == CategoryCaps()


def test_caps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_values"):
        CategoryCaps(max_values=0)
    with pytest.raises(ValueError, match="max_length"):
        CategoryCaps(max_length=0)


def test_overflow_is_compared_as_one_unseen_category_named_apart_from_real_ones() -> None:
    ref = ReferenceProfile.from_columns(
        {"c": ["a"] * 50 + ["b"] * 50 + [OTHER] * 5}, {"c": "categorical"}
    )
    spec = ModelSpec(
        "m",
        (FeatureSpec("c", FeatureKind.CATEGORICAL),),
        PredictionSpec(PredictionKind.NUMERICAL),
        window_seconds=60,
    )
    window = WindowSketch.empty(spec, CategoryCaps(max_values=2, max_length=8))
    values = ["a"] * 40 + ["b"] * 40 + [f"new-{i}" for i in range(20)] + ["far too long"]
    window.update(WindowBatch(len(values), {"c": values}, [0.0] * len(values)))
    sketch = window.features["c"]
    assert isinstance(sketch, CategoricalSketch)
    assert sketch.count == len(values)
    counts = sketch.comparable_counts(ref.features["c"].sketch.counts)
    assert sum(counts.values()) == len(values)
    bucket = f"_{OTHER}_"  # the reference has a real category named __other__
    assert counts[bucket] == sketch.other > 0
    report = evaluate(ref, window, min_rows=10)
    (feature,) = report.features
    assert bucket in feature.unseen_categories
    assert feature.current_count == len(values)
    method, score, _ = compare_categorical(ref.features["c"], sketch, None)
    assert score is not None and method is not None


def test_the_row_sample_keeps_an_over_long_value_as_the_overflow_bucket() -> None:
    spec = ModelSpec(
        "m",
        (FeatureSpec("c", FeatureKind.CATEGORICAL),),
        PredictionSpec(PredictionKind.CATEGORICAL),
        window_seconds=60,
        sample_size=10,
    )
    window = WindowSketch.empty(spec, CategoryCaps(max_length=5))
    window.update(
        WindowBatch(3, {"c": ["short", "x" * 100_000, None]}, ["a", "b" * 6, "c"], ["1", "2", "3"])
    )
    assert sorted(map(str, window.sample_frame()["c"])) == ["None", "__other__", "short"]
    assert sorted(window.sample_frame()["prediction"]) == ["__other__", "a", "c"]
    assert len(window.to_bytes()) < 1000
