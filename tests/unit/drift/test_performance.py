"""Performance sketches: metrics against direct computation, merge laws, serialisation."""

from __future__ import annotations

import bisect
import itertools
import json
import math
import zlib
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drift.errors import SketchCorrupt, SketchMismatch
from drift.performance import (
    DEFAULT_ERROR_EDGES,
    LOG_LOSS_EPS,
    ClassificationSketch,
    PerformanceMetrics,
    PerformanceSketch,
    RegressionSketch,
    Task,
    accuracy,
    calibration_error,
    f1,
    log_loss,
    mae,
    mape,
    precision,
    recall,
    rmse,
    roc_auc,
    symmetric_edges,
)

PROPERTY = settings(deadline=None, max_examples=50)


def assert_states_close(a: Any, b: Any) -> None:
    """Counts and labels exactly, float sums up to rounding."""
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (a, b)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_states_close(x, y)
    else:
        assert a == b


def chunks(n: int, parts: int) -> list[slice]:
    bounds = np.linspace(0, n, parts + 1).astype(int)
    return [slice(int(lo), int(hi)) for lo, hi in itertools.pairwise(bounds)]


# -- exact reference computations ------------------------------------------


def exact_auc(scores: np.ndarray, is_pos: np.ndarray) -> float:
    """Mann-Whitney: P(positive score > negative score) + half the ties, over all pairs."""
    pos, neg = scores[is_pos], scores[~is_pos]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def per_class(actual: np.ndarray, predicted: np.ndarray, label: str) -> tuple[int, int, int]:
    tp = int(np.sum((actual == label) & (predicted == label)))
    fp = int(np.sum((actual != label) & (predicted == label)))
    fn = int(np.sum((actual == label) & (predicted != label)))
    return tp, fp, fn


@pytest.fixture(scope="module")
def multiclass() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 5000
    actual = rng.choice(["0", "1", "2"], size=n, p=[0.5, 0.3, 0.2])
    wrong = rng.random(n) < 0.25
    predicted = np.where(wrong, rng.choice(["0", "1", "2", "3"], size=n), actual)
    logit = np.where(actual == "1", 1.0, -1.0) + rng.normal(0, 1.2, n)
    return actual, predicted, 1 / (1 + np.exp(-logit))


def fed(actual: np.ndarray, predicted: np.ndarray, scores: np.ndarray) -> ClassificationSketch:
    sketch = ClassificationSketch()
    for part in chunks(actual.size, 7):
        sketch.update(actual[part].tolist(), predicted[part].tolist(), scores[part].tolist())
    return sketch


# -- classification metrics ------------------------------------------------


def test_label_metrics_match_direct_computation(multiclass: tuple[np.ndarray, ...]) -> None:
    actual, predicted, scores = multiclass
    sketch = fed(actual, predicted, scores)
    assert sketch.count == actual.size
    assert sketch.classes == ["0", "1", "2", "3"]
    assert accuracy(sketch) == pytest.approx(np.mean(actual == predicted), abs=1e-12)

    tp, fp, fn = per_class(actual, predicted, "1")
    assert precision(sketch) == pytest.approx(tp / (tp + fp))
    assert recall(sketch) == pytest.approx(tp / (tp + fn))
    assert f1(sketch) == pytest.approx(2 * tp / (2 * tp + fp + fn))

    precisions, recalls, f1s = [], [], []
    for label in ["0", "1", "2", "3"]:
        tp, fp, fn = per_class(actual, predicted, label)
        precisions.append(tp / (tp + fp) if tp + fp else 0.0)
        recalls.append(tp / (tp + fn) if tp + fn else 0.0)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert recalls[3] == 0.0  # "3" is only ever predicted
    assert precision(sketch, average="macro") == pytest.approx(np.mean(precisions))
    assert recall(sketch, average="macro") == pytest.approx(np.mean(recalls))
    assert f1(sketch, average="macro") == pytest.approx(np.mean(f1s))

    classes, matrix = sketch.matrix()
    assert matrix.sum() == actual.size
    assert matrix[classes.index("2"), classes.index("0")] == np.sum(
        (actual == "2") & (predicted == "0")
    )


def test_log_loss_and_calibration_match_direct_computation(
    multiclass: tuple[np.ndarray, ...],
) -> None:
    actual, predicted, scores = multiclass
    scores = scores.copy()
    scores[:3] = [0.0, 1.0, 1.0]  # clipping keeps certain mistakes finite
    sketch = fed(actual, predicted, scores)
    y = (actual == "1").astype(float)
    p = np.clip(scores, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert log_loss(sketch) == pytest.approx(expected, rel=1e-9)

    count, _ = np.histogram(scores, bins=10, range=(0, 1))
    total, _ = np.histogram(scores, bins=10, range=(0, 1), weights=scores)
    positives, _ = np.histogram(scores, bins=10, range=(0, 1), weights=y)
    assert sketch.calibration_count.tolist() == count.tolist()
    assert sketch.calibration_positives.tolist() == positives.astype(int).tolist()
    np.testing.assert_allclose(sketch.calibration_score_sum, total, rtol=1e-12)
    ece = np.abs(total - positives).sum() / scores.size
    assert calibration_error(sketch) == pytest.approx(ece, rel=1e-9)


@pytest.mark.parametrize("shape", ["logistic", "beta", "coarse"])
def test_histogram_auc_is_within_tolerance_of_exact(shape: str) -> None:
    rng = np.random.default_rng(11)
    n = 10_000
    is_pos = rng.random(n) < 0.35
    if shape == "logistic":
        scores = 1 / (1 + np.exp(-(np.where(is_pos, 0.8, -0.8) + rng.normal(0, 1, n))))
    elif shape == "beta":
        # Mass piled near 0, where a fixed-width bin holds the most pairs.
        scores = np.where(is_pos, rng.beta(1.2, 8, n), rng.beta(0.8, 10, n))
    else:
        scores = np.round(rng.beta(np.where(is_pos, 3, 2), 3), 3)  # many exact ties
    sketch = ClassificationSketch()
    sketch.update(np.where(is_pos, "1", "0").tolist(), ["1"] * n, scores.tolist())
    approx, exact = roc_auc(sketch), exact_auc(scores, is_pos)
    assert approx is not None
    assert abs(approx - exact) < 0.005
    # The documented worst case: half the share of positive-negative pairs in one bin.
    pos, neg = sketch.positive_scores, sketch.negative_scores
    bound = 0.5 * float(np.dot(pos, neg)) / (pos.sum() * neg.sum())
    assert abs(approx - exact) <= bound + 1e-12


def test_auc_is_exact_when_scores_sit_in_distinct_bins() -> None:
    sketch = ClassificationSketch()
    sketch.update(["1", "0", "1", "0", "0"], ["1"] * 5, [0.9, 0.8, 0.6, 0.1, 0.55])
    assert roc_auc(sketch) == pytest.approx(5 / 6)


def test_labels_are_text_and_missing_pairs_are_counted_apart() -> None:
    sketch = ClassificationSketch()
    sketch.update([1, 0, None, "1"], ["1", 0, "1", None], [0.9, 0.2, 0.5, 0.7])  # type: ignore[list-item]
    assert dict(sketch.confusion) == {("1", "1"): 1, ("0", "0"): 1}
    assert sketch.missing == 2
    assert sketch.scored == 2  # scores of unlabelled events are dropped with them


def test_nan_and_none_scores_are_unscored() -> None:
    sketch = ClassificationSketch()
    sketch.update(["1", "0", "1"], ["1", "0", "0"], [None, float("nan"), 0.4])
    assert sketch.count == 3
    assert sketch.scored == 1
    sketch.update(["0"], ["0"])
    assert sketch.count == 4 and sketch.scored == 1


@pytest.mark.parametrize("bad", [1.5, -0.1, float("inf")])
def test_out_of_range_scores_raise_and_change_nothing(bad: float) -> None:
    sketch = ClassificationSketch()
    sketch.update(["1"], ["1"], [0.5])
    before = sketch.to_state()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sketch.update(["1", "0"], ["1", "0"], [0.3, bad])
    assert sketch.to_state() == before


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same length"):
        ClassificationSketch().update(["1"], ["1", "0"])
    with pytest.raises(ValueError, match="same length"):
        ClassificationSketch().update(["1"], ["1"], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        RegressionSketch().update([1.0], [])


def test_undefined_classification_metrics_are_none() -> None:
    empty = ClassificationSketch()
    assert empty.metrics() == PerformanceMetrics(task=Task.CLASSIFICATION, n=0)

    one_class = ClassificationSketch()
    one_class.update(["0", "0"], ["0", "1"], [0.2, 0.7])
    assert roc_auc(one_class) is None  # no actual positives
    assert recall(one_class) is None
    assert precision(one_class) == 0.0
    assert log_loss(one_class) is not None

    never_predicted = ClassificationSketch()
    never_predicted.update(["1", "0"], ["0", "0"])
    assert precision(never_predicted) is None
    assert recall(never_predicted) == 0.0
    assert roc_auc(never_predicted) is None and log_loss(never_predicted) is None
    assert calibration_error(never_predicted) is None

    with pytest.raises(ValueError, match="average"):
        f1(never_predicted, average="weighted")  # type: ignore[arg-type]


def test_positive_label_is_configurable() -> None:
    sketch = ClassificationSketch(positive_label="fraud")
    sketch.update(["fraud", "ok", "ok"], ["fraud", "fraud", "ok"], [0.9, 0.6, 0.1])
    assert precision(sketch) == 0.5 and recall(sketch) == 1.0
    assert roc_auc(sketch) == 1.0


@pytest.mark.parametrize(
    "kwargs", [{"positive_label": 1}, {"score_bins": 0}, {"calibration_bins": 2.5}]
)
def test_invalid_classification_settings_raise(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ClassificationSketch(**kwargs)


# -- regression metrics ------------------------------------------------------


def test_regression_metrics_match_direct_computation() -> None:
    rng = np.random.default_rng(3)
    actual = np.round(rng.normal(10, 5, 4000), 1)  # rounding puts some actuals at exactly 0
    predicted = actual + rng.standard_t(4, 4000)
    sketch = RegressionSketch()
    for part in chunks(actual.size, 5):
        sketch.update(actual[part].tolist(), predicted[part].tolist())
    err = predicted - actual
    nonzero = actual != 0
    assert nonzero.sum() < actual.size
    assert sketch.count == actual.size
    assert rmse(sketch) == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-12)
    assert mae(sketch) == pytest.approx(np.mean(np.abs(err)), rel=1e-12)
    assert mape(sketch) == pytest.approx(np.mean(np.abs(err[nonzero] / actual[nonzero])))
    assert sketch.ape_count == nonzero.sum()
    assert sketch.metrics().mean_error == pytest.approx(err.mean(), rel=1e-9)
    assert sketch.squared_error_variance == pytest.approx(np.var(err**2, ddof=1), rel=1e-9)
    hist = np.zeros(len(DEFAULT_ERROR_EDGES) + 1, dtype=int)
    for e in err:
        hist[bisect.bisect_right(DEFAULT_ERROR_EDGES, e)] += 1
    assert sketch.hist.tolist() == hist.tolist()


def test_default_error_edges_are_symmetric() -> None:
    edges = np.array(DEFAULT_ERROR_EDGES)
    np.testing.assert_array_equal(edges, -edges[::-1])
    assert 0.0 in DEFAULT_ERROR_EDGES and np.all(np.diff(edges) > 0)
    with pytest.raises(ValueError):
        symmetric_edges([0.0, 1.0])
    with pytest.raises(ValueError):
        RegressionSketch(edges=(1.0, 1.0))


def test_non_finite_regression_pairs_are_missing() -> None:
    sketch = RegressionSketch(edges=(-1.0, 0.0, 1.0))
    sketch.update([1.0, None, 2.0, float("nan"), 0.0], [1.5, 1.0, float("inf"), 3.0, -0.5])
    assert (sketch.count, sketch.missing, sketch.ape_count) == (2, 3, 1)
    assert sketch.hist.tolist() == [0, 1, 1, 0]


def test_undefined_regression_metrics_are_none() -> None:
    assert RegressionSketch().metrics() == PerformanceMetrics(task=Task.REGRESSION, n=0)
    zeros = RegressionSketch()
    zeros.update([0.0], [1.0])
    assert mape(zeros) is None and mae(zeros) == 1.0
    assert zeros.squared_error_variance is None


# -- merge == concatenation --------------------------------------------------

label_st = st.one_of(st.none(), st.sampled_from(["0", "1", "2", ""]), st.integers(0, 2))
score_st = st.one_of(st.none(), st.just(float("nan")), st.floats(0, 1), st.sampled_from([0.0, 1.0]))
class_events = st.lists(st.tuples(label_st, label_st, score_st), max_size=30)
value_st = st.one_of(
    st.none(),
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from([0.0, 1.0, -1.0, float("inf"), float("nan")]),
)
reg_events = st.lists(st.tuples(value_st, value_st), max_size=30)
# JSON has no inf, which a percentage error over a subnormal actual overflows to.
moderate_st = st.one_of(st.none(), st.floats(-1e6, 1e6).filter(lambda x: x == 0 or abs(x) > 1e-6))
json_safe_reg_events = st.lists(st.tuples(moderate_st, moderate_st), max_size=30)


def classification_of(*parts: list[tuple[Any, Any, Any]]) -> ClassificationSketch:
    sketch = ClassificationSketch()
    for part in parts:
        sketch.update([e[0] for e in part], [e[1] for e in part], [e[2] for e in part])
    return sketch


def regression_of(*parts: list[tuple[Any, Any]]) -> RegressionSketch:
    sketch = RegressionSketch()
    for part in parts:
        sketch.update([e[0] for e in part], [e[1] for e in part])
    return sketch


@PROPERTY
@given(a=class_events, b=class_events)
def test_classification_merge_equals_concatenation(a: list[Any], b: list[Any]) -> None:
    left, right = classification_of(a), classification_of(b)
    left.merge(right)
    assert_states_close(left.to_state(), classification_of(a + b).to_state())
    assert right == classification_of(b)  # merge must not touch its argument


@PROPERTY
@given(a=reg_events, b=reg_events)
def test_regression_merge_equals_concatenation(a: list[Any], b: list[Any]) -> None:
    left, right = regression_of(a), regression_of(b)
    left.merge(right)
    assert_states_close(left.to_state(), regression_of(a + b).to_state())
    assert right == regression_of(b)


@PROPERTY
@given(a=class_events, b=class_events)
def test_merged_metrics_equal_metrics_of_concatenation(a: list[Any], b: list[Any]) -> None:
    merged = classification_of(a)
    merged.merge(classification_of(b))
    whole = classification_of(a + b)
    assert (accuracy(merged), f1(merged, average="macro"), roc_auc(merged)) == (
        accuracy(whole),
        f1(whole, average="macro"),
        roc_auc(whole),
    )


def test_merging_incompatible_sketches_raises_and_changes_nothing() -> None:
    base = classification_of([("1", "1", 0.9)])
    before = base.to_state()
    for other in [ClassificationSketch(positive_label="yes"), ClassificationSketch(score_bins=50)]:
        with pytest.raises(SketchMismatch):
            base.merge(other)
    assert base.to_state() == before
    with pytest.raises(SketchMismatch):
        RegressionSketch().merge(RegressionSketch(edges=(-1.0, 0.0, 1.0)))
    cls_wrapped = PerformanceSketch(base)
    with pytest.raises(SketchMismatch):
        cls_wrapped.merge(PerformanceSketch.empty("regression"))
    with pytest.raises(SketchMismatch):
        PerformanceSketch.empty("regression").merge(cls_wrapped)


# -- state and bytes -----------------------------------------------------------


@PROPERTY
@given(c=class_events, r=json_safe_reg_events)
def test_state_round_trips_through_json_and_msgpack(c: list[Any], r: list[Any]) -> None:
    for sketch in (classification_of(c), regression_of(r)):
        state = sketch.to_state()
        again = type(sketch).from_state(json.loads(json.dumps(state, allow_nan=False)))
        assert again == sketch and again.to_state() == state
        assert type(sketch).from_state(msgspec.msgpack.decode(msgspec.msgpack.encode(state))) == (
            sketch
        )


@PROPERTY
@given(c=class_events, r=reg_events)
def test_bytes_round_trip(c: list[Any], r: list[Any]) -> None:
    for wrapped in (PerformanceSketch(classification_of(c)), PerformanceSketch(regression_of(r))):
        again = PerformanceSketch.from_bytes(wrapped.to_bytes())
        assert again == wrapped and again.task is wrapped.task
        assert again.metrics() == wrapped.metrics()


def test_wrapper_dispatches_by_task() -> None:
    cls_sketch = PerformanceSketch.empty(Task.CLASSIFICATION, positive_label="a")
    cls_sketch.update(["a", "b"], ["a", "a"], [0.8, 0.4])
    assert cls_sketch.metrics().precision == 0.5 and cls_sketch.metrics().roc_auc == 1.0
    reg = PerformanceSketch.empty("regression", error_edges=(-1.0, 1.0))
    reg.update([1.0], [3.0])
    assert reg.metrics().rmse == 2.0 and reg.task is Task.REGRESSION
    with pytest.raises(ValueError, match="no scores"):
        reg.update([1.0], [2.0], [0.5])
    with pytest.raises(ValueError, match="classification"):
        PerformanceSketch.empty("ranking")


def _pack(obj: Any) -> bytes:
    return zlib.compress(msgspec.msgpack.encode(obj))


def _valid_state() -> dict[str, Any]:
    sketch = classification_of([("1", "1", 0.9), ("0", "1", 0.3)])
    return {"v": 1, "task": "classification", "state": sketch.to_state()}


def _with_state(index: int, value: Any) -> bytes:
    state = _valid_state()
    state["state"][index] = value
    return _pack(state)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not zlib at all",
        PerformanceSketch.empty("regression").to_bytes()[:-4],
        zlib.compress(b"\xc1"),
        _pack([1, 2, 3]),
        _pack({**_valid_state(), "v": 2}),
        _pack({**_valid_state(), "task": "ranking"}),
        _pack({"v": 1, "task": "classification"}),
        _pack({**_valid_state(), "task": "regression"}),
        _with_state(0, "reg"),
        _with_state(8, [0] * 199),
        _with_state(9, [-1] + [0] * 199),
        _with_state(10, [0.5] * 10),
        _with_state(4, [["1", "1"]]),
        _with_state(4, [["1", "1", 2.5]]),
        _with_state(7, 1.5),
        _pack({"v": 1, "task": "regression", "state": ["reg", [1.0, 0.0], 0, 0, 0, 0, 0, 0, 0, 0]}),
    ],
)
def test_corrupt_bytes_raise_sketch_corrupt(data: bytes) -> None:
    with pytest.raises(SketchCorrupt):
        PerformanceSketch.from_bytes(data)


def test_corrupt_state_raises_sketch_corrupt() -> None:
    with pytest.raises(SketchCorrupt):
        ClassificationSketch.from_state(["cls"])
    with pytest.raises(SketchCorrupt):
        RegressionSketch.from_state(RegressionSketch().to_state()[:-1])
