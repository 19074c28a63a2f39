"""Mergeable window sketches: merge laws, serialisation and the histogram convention."""

from __future__ import annotations

import copy
import zlib
from collections import Counter
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db.migrations.sketch_rows import as_format_3
from drift.errors import SketchCorrupt, SketchMismatch
from drift.histogram import SMALL_BATCH
from drift.rowsample import sample_key
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import (
    CategoricalSketch,
    LayoutEdges,
    NumericSketch,
    WindowBatch,
    WindowSketch,
)

PROPERTY = settings(deadline=None, max_examples=100)

EDGES = (-10.0, 0.0, 2.5, 10.0)

# Edges: sorted, distinct, at least two.
edges_st = st.lists(
    st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False).map(lambda x: x + 0.0),
    min_size=2,
    max_size=8,
    unique=True,
).map(lambda xs: tuple(sorted(xs)))


def numeric_value(edges: tuple[float, ...]) -> st.SearchStrategy[float | None]:
    """Values inside, outside and exactly on the edges, plus nulls."""
    lo, hi = edges[0], edges[-1]
    span = hi - lo
    return st.one_of(
        st.none(),
        st.sampled_from(edges),
        st.floats(lo, hi, allow_nan=False),
        st.floats(lo - 10 * span - 1, lo, allow_nan=False, exclude_max=True),
        st.floats(hi, hi + 10 * span + 1, allow_nan=False),
        st.integers(-1000, 1000).map(float),
    )


def numeric_values(edges: tuple[float, ...]) -> st.SearchStrategy[list[float | None]]:
    return st.lists(numeric_value(edges), max_size=30)


category = st.one_of(st.none(), st.sampled_from(["a", "b", "c", ""]), st.text(max_size=3))


def sketch_of(edges: tuple[float, ...], *parts: list[Any]) -> NumericSketch:
    s = NumericSketch(edges)
    for p in parts:
        s.update(p)
    return s


# -- NumericSketch ----------------------------------------------------------


@PROPERTY
@given(data=st.data(), edges=edges_st)
def test_numeric_merge_equals_sequential_updates(data: st.DataObject, edges: tuple) -> None:
    a_values = data.draw(numeric_values(edges), label="a")
    b_values = data.draw(numeric_values(edges), label="b")
    a, b = sketch_of(edges, a_values), sketch_of(edges, b_values)
    a.merge(b)
    assert a == sketch_of(edges, a_values, b_values)
    # merge must not touch its argument
    assert b == sketch_of(edges, b_values)


@PROPERTY
@given(data=st.data(), edges=edges_st)
def test_numeric_counts_nulls_and_histogram_total(data: st.DataObject, edges: tuple) -> None:
    values = data.draw(numeric_values(edges))
    s = sketch_of(edges, values)
    present = [v for v in values if v is not None]
    assert s.nulls == len(values) - len(present)
    assert s.count == len(present)
    assert int(s.hist.sum()) == len(present)
    assert s.hist.shape == (len(edges) + 1,)
    if present:
        assert s.minimum == min(present)
        assert s.maximum == max(present)
    # Every value lands in the bucket the docstring promises.
    expected = [0] * (len(edges) + 1)
    for v in present:
        if v < edges[0]:
            expected[0] += 1
        elif v >= edges[-1]:
            expected[-1] += 1
        else:
            i = next(i for i in range(1, len(edges)) if edges[i - 1] <= v < edges[i])
            expected[i] += 1
    assert s.hist.tolist() == expected


def test_histogram_bucket_convention_on_concrete_values() -> None:
    s = NumericSketch((0.0, 1.0, 2.0))
    s.update([-0.5, 0.0, 0.5, 0.999, 1.0, 1.5, 2.0, 3.0, -1e6, 1e6])
    # [<0) [0,1) [1,2) [>=2]
    assert s.hist.tolist() == [2, 3, 2, 3]
    assert s.hist.dtype == np.int64


def test_histogram_value_just_below_first_edge_underflows() -> None:
    s = NumericSketch((0.0, 1.0))
    s.update([np.nextafter(0.0, -1.0), 0.0, np.nextafter(1.0, 0.0), 1.0])
    assert s.hist.tolist() == [1, 2, 1]


def test_numeric_update_with_only_nulls_and_empty() -> None:
    s = NumericSketch(EDGES)
    s.update([])
    assert s == NumericSketch(EDGES)
    s.update([None, None])
    assert (s.count, s.nulls, s.hist.tolist()) == (0, 2, [0, 0, 0, 0, 0])
    assert s.minimum == float("inf")
    assert s.maximum == float("-inf")
    assert s.mean is None
    assert s.variance is None


def test_numeric_nan_counts_as_null() -> None:
    s = NumericSketch(EDGES)
    s.update([float("nan"), 1.0, None])
    assert (s.count, s.nulls) == (1, 2)


def test_mean_and_variance_concrete() -> None:
    s = NumericSketch(EDGES)
    s.update([1.0, 2.0, None, 3.0, 4.0])
    assert s.mean == 2.5
    assert s.variance == 1.25
    assert (s.minimum, s.maximum) == (1.0, 4.0)


def test_variance_of_constant_values() -> None:
    exact = NumericSketch(EDGES)
    exact.update([2.0] * 7)
    assert exact.variance == 0.0
    # 0.1 is not representable: the moment sums leave a rounding residue, never below zero.
    inexact = NumericSketch(EDGES)
    inexact.update([0.1] * 7)
    assert inexact.variance is not None
    assert 0.0 <= inexact.variance < 1e-15


@PROPERTY
@given(
    a=st.lists(st.floats(-1e3, 1e3, allow_nan=False) | st.none(), max_size=40),
    b=st.lists(st.floats(-1e3, 1e3, allow_nan=False) | st.none(), max_size=40),
)
def test_mean_and_variance_against_numpy(a: list, b: list) -> None:
    s = sketch_of(EDGES, a)
    s.merge(sketch_of(EDGES, b))
    present = np.array([v for v in a + b if v is not None], dtype=np.float64)
    if present.size == 0:
        assert s.mean is None
        assert s.variance is None
        return
    assert s.mean == pytest.approx(float(np.mean(present)), rel=1e-9, abs=1e-9)
    # Moment sums lose precision by cancellation; bound by the scale of the squares.
    scale = float(np.mean(present * present))
    assert s.variance == pytest.approx(float(np.var(present)), rel=1e-9, abs=1e-9 * scale + 1e-12)
    assert s.variance >= 0.0


def test_numeric_merge_with_different_edges_raises() -> None:
    a, b = NumericSketch((0.0, 1.0)), NumericSketch((0.0, 2.0))
    a.update([0.5])
    b.update([0.5])
    with pytest.raises(SketchMismatch):
        a.merge(b)
    assert a == sketch_of((0.0, 1.0), [0.5])


def test_numeric_merge_with_more_edges_raises() -> None:
    with pytest.raises(SketchMismatch):
        NumericSketch((0.0, 1.0)).merge(NumericSketch((0.0, 1.0, 2.0)))


def test_numeric_state_round_trip() -> None:
    s = sketch_of(EDGES, [1.0, None, -20.0, 10.0])
    back = NumericSketch.from_state(s.to_state())
    assert back == s
    assert back.hist.tolist() == [1, 0, 1, 0, 1]
    assert back.edges == EDGES


@PROPERTY
@given(data=st.data(), edges=edges_st)
def test_few_values_at_a_time_count_as_one_large_batch(data: st.DataObject, edges: tuple) -> None:
    values = data.draw(numeric_values(edges))
    # Below SMALL_BATCH values the sketch is updated in Python, above it with numpy.
    whole = sketch_of(edges, values * (SMALL_BATCH + 1))
    split = NumericSketch(edges)
    for _ in range(SMALL_BATCH + 1):
        for at in range(0, len(values), 3):
            split.update(np.asarray(values[at : at + 3], dtype=object))
    assert (split.count, split.nulls, split.hist.tolist()) == (
        whole.count, whole.nulls, whole.hist.tolist()
    )  # fmt: skip
    assert (split.minimum, split.maximum) == (whole.minimum, whole.maximum)
    assert split.total == pytest.approx(whole.total, rel=1e-9, abs=1e-6)
    assert split.total_sq == pytest.approx(whole.total_sq, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize(("top", "width"), [(0, 1), (255, 1), (256, 2), (65_536, 4), (2**32, 8)])
def test_counts_are_stored_as_narrow_as_they_fit(top: int, width: int) -> None:
    s = sketch_of(EDGES, [1.0, -20.0])
    s.hist[2] = top
    s.count = int(s.hist.sum())  # as though the bucket's values had been counted
    state = s.to_state(inline_edges=False)
    assert state[-1] == width and len(state[-2]) == width * len(s.hist)
    back = NumericSketch.from_state(state, EDGES)
    assert back == s and back.hist.dtype == np.int64
    assert s.to_state()[-1] == s.hist.astype("<i8").tobytes()  # with edges: as before


def test_a_count_width_no_release_writes_is_corrupt() -> None:
    state = sketch_of(EDGES, [1.0]).to_state(inline_edges=False)
    with pytest.raises(SketchCorrupt, match="counts 3 bytes wide"):
        NumericSketch.from_state([*state[:-1], 3], EDGES)


def test_numeric_eq_with_other_type_is_not_implemented() -> None:
    assert NumericSketch(EDGES).__eq__(object()) is NotImplemented
    assert NumericSketch(EDGES) != CategoricalSketch()


# -- CategoricalSketch ------------------------------------------------------


@PROPERTY
@given(a=st.lists(category, max_size=30), b=st.lists(category, max_size=30))
def test_categorical_merge_equals_sequential_updates(a: list, b: list) -> None:
    left, right, seq = CategoricalSketch(), CategoricalSketch(), CategoricalSketch()
    left.update(a)
    right.update(b)
    left.merge(right)
    seq.update(a)
    seq.update(b)
    assert left == seq
    assert left.to_state() == seq.to_state()
    assert left.nulls == sum(v is None for v in a + b)
    assert left.count == sum(v is not None for v in a + b)


def test_categorical_counts_and_nulls_concrete() -> None:
    s = CategoricalSketch()
    s.update(["de", "fr", None, "de", 3])
    assert s.counts == Counter({"de": 2, "fr": 1, "3": 1})
    assert s.nulls == 1
    assert s.count == 4
    assert s.to_state() == ["c", {"3": 1, "de": 2, "fr": 1}, 1]


def test_categorical_keeps_bools_and_ints_apart() -> None:
    s = CategoricalSketch()
    s.update([True, 1, False, 0])
    assert s.counts == Counter({"True": 1, "1": 1, "False": 1, "0": 1})


def test_categorical_one_batch_equals_two_batches() -> None:
    one, two = CategoricalSketch(), CategoricalSketch()
    one.update([1, True])
    two.update([1])
    two.update([True])
    assert one == two


# -- WindowSketch -----------------------------------------------------------

SPEC_NUM_PRED = ModelSpec(
    "m",
    (
        FeatureSpec("amount", FeatureKind.NUMERICAL, nullable=True, edges=EDGES),
        FeatureSpec("country", FeatureKind.CATEGORICAL, nullable=True),
    ),
    PredictionSpec(PredictionKind.NUMERICAL, (0.0, 0.5, 1.0)),
    window_seconds=60,
)
SPEC_CAT_PRED = ModelSpec(
    "m",
    SPEC_NUM_PRED.features,
    PredictionSpec(PredictionKind.CATEGORICAL),
    window_seconds=60,
)


@st.composite
def batches(draw: st.DrawFn, spec: ModelSpec) -> WindowBatch:
    n = draw(st.integers(0, 15))
    amount = draw(st.lists(numeric_value(EDGES), min_size=n, max_size=n))
    country = draw(st.lists(category, min_size=n, max_size=n))
    if spec.prediction.kind is PredictionKind.NUMERICAL:
        preds = draw(st.lists(st.floats(-1.0, 2.0, allow_nan=False), min_size=n, max_size=n))
    else:
        preds = draw(st.lists(st.sampled_from(["yes", "no"]), min_size=n, max_size=n))
    return WindowBatch(n, {"amount": amount, "country": country}, preds)


def window_of(spec: ModelSpec, *parts: WindowBatch) -> WindowSketch:
    w = WindowSketch.empty(spec)
    for p in parts:
        w.update(p)
    return w


@PROPERTY
@given(data=st.data(), spec=st.sampled_from([SPEC_NUM_PRED, SPEC_CAT_PRED]))
def test_window_merge_equals_sequential_updates(data: st.DataObject, spec: ModelSpec) -> None:
    a_batch = data.draw(batches(spec), label="a")
    b_batch = data.draw(batches(spec), label="b")
    a, b = window_of(spec, a_batch), window_of(spec, b_batch)
    a.merge(b)
    assert a == window_of(spec, a_batch, b_batch)
    assert a.events == a_batch.events + b_batch.events
    assert b == window_of(spec, b_batch)


def _exact_parts(w: WindowSketch) -> list[Any]:
    """The state of a window sketch without the floating-point moment sums."""
    parts: list[Any] = [w.events]
    for col in [*(w.features[k] for k in sorted(w.features)), w.prediction]:
        if isinstance(col, NumericSketch):
            parts.append((col.count, col.nulls, col.minimum, col.maximum, col.hist.tolist()))
        else:
            parts.append(col.to_state())
    return parts


@PROPERTY
@given(data=st.data(), spec=st.sampled_from([SPEC_NUM_PRED, SPEC_CAT_PRED]))
def test_window_merge_of_several_flushes(data: st.DataObject, spec: ModelSpec) -> None:
    # Several updates per side: counts, extremes and histograms are exact; the float
    # sums are added in another order, so they agree to rounding only.
    a_parts = data.draw(st.lists(batches(spec), max_size=3), label="a")
    b_parts = data.draw(st.lists(batches(spec), max_size=3), label="b")
    a, b = window_of(spec, *a_parts), window_of(spec, *b_parts)
    a.merge(b)
    expected = window_of(spec, *a_parts, *b_parts)
    assert _exact_parts(a) == _exact_parts(expected)
    for got, want in zip(
        [*a.features.values(), a.prediction],
        [*expected.features.values(), expected.prediction],
        strict=True,
    ):
        if isinstance(got, NumericSketch):
            assert isinstance(want, NumericSketch)
            assert got.total == pytest.approx(want.total, rel=1e-12, abs=1e-9)
            assert got.total_sq == pytest.approx(want.total_sq, rel=1e-12, abs=1e-9)


@PROPERTY
@given(data=st.data(), spec=st.sampled_from([SPEC_NUM_PRED, SPEC_CAT_PRED]))
def test_window_bytes_round_trip(data: st.DataObject, spec: ModelSpec) -> None:
    w = window_of(spec, *data.draw(st.lists(batches(spec), max_size=3)))
    raw = w.to_bytes()
    back = WindowSketch.from_bytes(raw)
    assert back == w
    assert back.to_bytes() == raw
    assert back.events == w.events
    assert back.features.keys() == w.features.keys()
    amount = back.features["amount"]
    assert isinstance(amount, NumericSketch)
    assert amount.to_state() == w.features["amount"].to_state()


def test_window_sketch_docstring_example() -> None:
    spec = ModelSpec(
        "m",
        (FeatureSpec("x", FeatureKind.NUMERICAL, edges=(0.0, 1.0, 2.0)),),
        PredictionSpec(PredictionKind.CATEGORICAL),
        window_seconds=60,
    )
    a, b = WindowSketch.empty(spec), WindowSketch.empty(spec)
    a.update(WindowBatch(2, {"x": [0.5, 1.5]}, ["yes", "no"]))
    b.update(WindowBatch(1, {"x": [None]}, ["yes"]))
    a.merge(b)
    x = a.features["x"]
    assert isinstance(x, NumericSketch)
    assert isinstance(a.prediction, CategoricalSketch)
    assert (a.events, x.nulls, x.count, x.hist.tolist()) == (3, 1, 2, [0, 1, 1, 0])
    assert a.prediction.counts == Counter({"yes": 2, "no": 1})


def test_empty_window_sketch_allocates_per_spec() -> None:
    w = WindowSketch.empty(SPEC_NUM_PRED)
    assert w.events == 0
    assert isinstance(w.features["amount"], NumericSketch)
    assert w.features["amount"].edges == EDGES
    assert isinstance(w.features["country"], CategoricalSketch)
    assert isinstance(w.prediction, NumericSketch)
    assert w.prediction.edges == (0.0, 0.5, 1.0)
    assert isinstance(WindowSketch.empty(SPEC_CAT_PRED).prediction, CategoricalSketch)


def test_window_merge_with_different_edges_raises() -> None:
    other = ModelSpec(
        "m",
        (
            FeatureSpec("amount", FeatureKind.NUMERICAL, edges=(0.0, 1.0)),
            FeatureSpec("country", FeatureKind.CATEGORICAL),
        ),
        SPEC_NUM_PRED.prediction,
        window_seconds=60,
    )
    with pytest.raises(SketchMismatch):
        WindowSketch.empty(SPEC_NUM_PRED).merge(WindowSketch.empty(other))


def test_window_merge_with_different_prediction_edges_raises() -> None:
    other = ModelSpec(
        "m", SPEC_NUM_PRED.features, PredictionSpec(PredictionKind.NUMERICAL, (0.0, 1.0)), 60
    )
    with pytest.raises(SketchMismatch):
        WindowSketch.empty(SPEC_NUM_PRED).merge(WindowSketch.empty(other))


def test_window_merge_with_different_features_raises() -> None:
    other = ModelSpec("m", SPEC_NUM_PRED.features[:1], SPEC_NUM_PRED.prediction, 60)
    with pytest.raises(SketchMismatch, match="different features"):
        WindowSketch.empty(SPEC_NUM_PRED).merge(WindowSketch.empty(other))


def test_window_merge_numerical_with_categorical_prediction_raises() -> None:
    with pytest.raises(SketchMismatch, match="prediction: sketches have different kinds"):
        WindowSketch.empty(SPEC_NUM_PRED).merge(WindowSketch.empty(SPEC_CAT_PRED))


def test_window_eq_distinguishes_content() -> None:
    a = window_of(SPEC_CAT_PRED, WindowBatch(1, {"amount": [1.0], "country": ["de"]}, ["yes"]))
    b = window_of(SPEC_CAT_PRED, WindowBatch(1, {"amount": [1.0], "country": ["fr"]}, ["yes"]))
    assert a != b
    assert a == copy.deepcopy(a)
    assert a.__eq__("x") is NotImplemented


# -- from_bytes on bad input --------------------------------------------------


@PROPERTY
@given(garbage=st.binary(max_size=200))
def test_from_bytes_of_garbage_raises_sketch_corrupt(garbage: bytes) -> None:
    with pytest.raises(SketchCorrupt):
        WindowSketch.from_bytes(garbage)


def _packed(state: Any) -> bytes:
    return zlib.compress(msgspec.msgpack.encode(state))


GOOD_STATE = {"v": 1, "events": 0, "features": {}, "prediction": ["c", {}, 0]}


def test_from_bytes_of_good_state_decodes() -> None:
    w = WindowSketch.from_bytes(_packed(GOOD_STATE))
    assert (w.events, w.features, w.prediction) == (0, {}, CategoricalSketch())


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a sketch", id="text"),
        pytest.param(WindowSketch.empty(SPEC_NUM_PRED).to_bytes()[:-3], id="truncated"),
        pytest.param(zlib.compress(b"\xc1"), id="msgpack-invalid"),
        pytest.param(_packed({**GOOD_STATE, "v": 99}), id="future-version"),
        pytest.param(_packed({"events": 0}), id="no-version"),
        pytest.param(_packed({**GOOD_STATE, "prediction": ["z", 1]}), id="unknown-kind"),
        pytest.param(
            _packed({k: v for k, v in GOOD_STATE.items() if k != "events"}), id="no-events"
        ),
        pytest.param(
            _packed({**GOOD_STATE, "prediction": ["n", [0.0, 1.0], 0]}), id="short-numeric"
        ),
        pytest.param(
            _packed(
                {**GOOD_STATE, "prediction": ["n", [0.0, 1.0], 0, 0, 0.0, 0.0, 0.0, 0.0, b"\x00"]}
            ),
            id="hist-bytes",
        ),
    ],
)
def test_from_bytes_of_bad_state_raises_sketch_corrupt(data: bytes) -> None:
    with pytest.raises(SketchCorrupt):
        WindowSketch.from_bytes(data)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param([1, 2], id="top-level-list"),
        pytest.param(5, id="top-level-int"),
        pytest.param({**GOOD_STATE, "features": [["x"]]}, id="features-short-pair"),
        pytest.param({**GOOD_STATE, "features": {"x": []}}, id="empty-column-state"),
    ],
)
def test_from_bytes_of_wrongly_shaped_state_raises_sketch_corrupt(state: Any) -> None:
    with pytest.raises(SketchCorrupt):
        WindowSketch.from_bytes(_packed(state))


SAMPLED = ModelSpec(
    "sampled",
    (
        FeatureSpec("amount", FeatureKind.NUMERICAL, nullable=True, edges=EDGES),
        FeatureSpec("country", FeatureKind.CATEGORICAL, nullable=True),
    ),
    PredictionSpec(PredictionKind.CATEGORICAL),
    window_seconds=60,
    sample_size=5,
)


def _keyed(batch: WindowBatch, first_id: int) -> WindowBatch:
    ids = [f"event-{first_id + i}" for i in range(batch.events)]
    return WindowBatch(batch.events, batch.columns, batch.predictions, ids)


@PROPERTY
@given(data=st.data())
def test_row_sample_is_the_same_however_the_events_are_split(data: st.DataObject) -> None:
    parts = data.draw(st.lists(batches(SAMPLED), min_size=1, max_size=5), label="parts")
    keyed, first = [], 0
    for p in parts:
        keyed.append(_keyed(p, first))
        first += p.events
    merged = WindowSketch.empty(SAMPLED)
    for p in keyed:
        merged.merge(window_of(SAMPLED, p))
    assert merged == window_of(SAMPLED, *keyed)
    assert merged.sample.rows == window_of(SAMPLED, *reversed(keyed)).sample.rows
    # The sample is the five events with the smallest keys, whole.
    everything = [
        (k, (*row, pred))
        for p in keyed
        for k, *row, pred in zip(
            map(sample_key, p.event_ids or []),
            p.columns["amount"],
            p.columns["country"],
            p.predictions,
            strict=True,
        )
    ]
    expected = sorted(everything, key=lambda kv: kv[0])[:5]
    assert merged.sample.keys == [k for k, _ in expected]
    assert merged.sample.rows == [r for _, r in expected]
    assert merged.sample_is_complete == (first <= 5)


def test_row_sample_survives_bytes_and_gives_columns() -> None:
    batch = _keyed(
        WindowBatch(
            3, {"amount": [1.0, None, 2.5], "country": ["de", "fr", None]}, ["yes", "no", "yes"]
        ),
        0,
    )
    w = window_of(SAMPLED, batch)
    back = WindowSketch.from_bytes(w.to_bytes())
    assert back == w and back.sample_is_complete
    frame = back.sample_frame()
    assert sorted(frame) == ["amount", "country", "prediction"]
    assert sorted(frame["amount"], key=str) == sorted([1.0, None, 2.5], key=str)


def test_unsampled_sketches_read_from_format_1() -> None:
    state = {"v": 1, "events": 0, "features": {}, "prediction": ["c", {}, 0]}
    w = WindowSketch.from_bytes(zlib.compress(msgspec.msgpack.encode(state)))
    assert w.sample.capacity == 0 and w.sample.rows == []


def test_a_sketch_may_leave_its_edges_to_its_layout() -> None:
    a = WindowSketch.empty(SPEC_NUM_PRED)
    a.update(WindowBatch(2, {"amount": [1.0, 25.0], "country": ["de", "fr"]}, [0.2, 0.9]))
    lean = a.to_bytes(edges=False)
    assert len(lean) < len(a.to_bytes())
    asked: list[str] = []

    def lookup(layout: str) -> LayoutEdges:
        asked.append(layout)
        return a.layout_edges()

    back = WindowSketch.from_bytes(lean, lookup)
    assert back == a and back.layout == SPEC_NUM_PRED.layout
    assert asked == [SPEC_NUM_PRED.layout]  # one lookup for all the columns
    # With its edges a sketch needs no lookup, and is read by earlier releases (format 2).
    assert WindowSketch.from_bytes(a.to_bytes()) == a
    with pytest.raises(SketchCorrupt, match="no lookup was given"):
        WindowSketch.from_bytes(lean)


def test_rows_of_format_3_with_eight_byte_counts_are_read() -> None:
    a = WindowSketch.empty(SPEC_NUM_PRED)
    a.update(WindowBatch(2, {"amount": [1.0, 25.0], "country": ["de", "fr"]}, [0.2, 0.9]))
    new = a.to_bytes(edges=False)
    assert msgspec.msgpack.decode(zlib.decompress(new))["v"] == 4
    # As a release before format 4 wrote the row: every histogram's counts in 8 bytes.
    old = as_format_3(new)
    assert old is not None and msgspec.msgpack.decode(zlib.decompress(old))["v"] == 3
    assert WindowSketch.from_bytes(old, lambda _: a.layout_edges()) == a


def test_a_sketch_without_a_layout_keeps_its_edges() -> None:
    bare = WindowSketch.from_bytes(WindowSketch.empty(SPEC_NUM_PRED).to_bytes())
    assert bare.layout == ""
    with pytest.raises(ValueError, match="must keep its bin edges"):
        bare.to_bytes(edges=False)
    bare.merge(WindowSketch.empty(SPEC_NUM_PRED))  # learns the layout from the delta
    assert bare.layout == SPEC_NUM_PRED.layout


def test_edges_that_do_not_fit_the_histogram_are_corrupt() -> None:
    a = WindowSketch.empty(SPEC_NUM_PRED)
    lean = a.to_bytes(edges=False)
    wrong = LayoutEdges({"amount": (0.0, 1.0)}, a.layout_edges().prediction)
    with pytest.raises(SketchCorrupt, match="histogram buckets"):
        WindowSketch.from_bytes(lean, lambda _: wrong)
