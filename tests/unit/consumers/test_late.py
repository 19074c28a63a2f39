"""The late-label join's pure decisions: which archived labels join, and what they add."""

from __future__ import annotations

from consumers.labels import LabelSpec
from consumers.late import (
    LateJoinSpec,
    LateOutcome,
    archived_actual,
    archived_prediction,
    candidates,
    decidable,
    first_pending,
    resolve_late,
)
from db.archive.late import ArchivedLabel, ArchivedPrediction
from drift.performance import ClassificationSketch, RegressionSketch, Task
from drift.schema import PredictionKind

T = 1_800_000_000.0
TTL = 600.0
SPEC = LabelSpec("fraud", PredictionKind.NUMERICAL, Task.CLASSIFICATION, TTL)
JS = LateJoinSpec(SPEC, 60, 0.0, 7 * 86400.0)


def lab(offset: int, eid: str, value: str, t: float) -> ArchivedLabel:
    return ArchivedLabel(offset, eid, value, t)


def pred(eid: str, t: float, score: float, version: str = "v1") -> ArchivedPrediction:
    return ArchivedPrediction(eid, version, t, score)


def test_a_label_past_the_horizon_moves_its_prediction_from_unlabeled_to_labeled() -> None:
    labels = [lab(3, "a", "1", T + 5 + TTL + 1), lab(4, "b", "0", T + 70 + 2 * TTL)]
    predictions = {"a": pred("a", T + 5, 0.9), "b": pred("b", T + 70, 0.2)}
    plan = resolve_late(2, labels, predictions, JS)
    assert plan.counts == {LateOutcome.JOINED: 2}
    assert plan.windows() == {("v1", int(T)), ("v1", int(T) + 60)}
    for key, delta in plan.deltas.items():
        assert (key.partition, key.layout, key.window_seconds) == (2, SPEC.layout, 60)
        assert (delta.predicted, delta.labeled, delta.unlabeled) == (0, 1, -1)
        sketch = delta.sketch.sketch
        assert isinstance(sketch, ClassificationSketch)
        assert (sketch.count, sketch.correct) == (1, 1)


def test_a_pair_within_the_horizon_is_the_streaming_joins() -> None:
    labels = [lab(0, "a", "1", T + 5 + TTL), lab(1, "b", "1", T - 30)]
    predictions = {"a": pred("a", T + 5, 0.9), "b": pred("b", T, 0.9)}
    plan = resolve_late(0, labels, predictions, JS)
    assert plan.counts == {LateOutcome.IN_HORIZON: 2}
    assert plan.deltas == {}
    assert candidates(labels, predictions, JS) == []


def test_no_prediction_or_one_older_than_max_delay_is_an_orphan() -> None:
    old = T - JS.max_delay - 1
    labels = [lab(0, "gone", "1", T), lab(1, "old", "1", T)]
    plan = resolve_late(0, labels, {"old": pred("old", old, 0.9)}, JS)
    assert plan.counts == {LateOutcome.ORPHANED: 2}


def test_a_second_late_label_in_the_batch_is_a_duplicate_the_first_wins() -> None:
    labels = [lab(0, "a", "1", T + TTL + 10), lab(1, "a", "0", T + TTL + 20)]
    plan = resolve_late(0, labels, {"a": pred("a", T, 0.9)}, JS)
    assert plan.counts == {LateOutcome.JOINED: 1, LateOutcome.DUPLICATE: 1}
    (delta,) = plan.deltas.values()
    sketch = delta.sketch.sketch
    assert isinstance(sketch, ClassificationSketch)
    assert sketch.correct == 1  # the first label, "1", and the prediction 0.9 agree


def test_a_batch_stops_at_the_first_label_whose_predictions_may_still_come() -> None:
    labels = [lab(0, "a", "1", T + 100), lab(1, "b", "1", T + 900), lab(2, "c", "1", T + 50)]
    # Predictions before T + 250 are final: "b" could still meet one up to T + 300.
    assert decidable(labels, JS, T + 250) == 1
    assert decidable(labels, JS, T + 301) == 3
    assert decidable([], JS, T) == 0


def test_a_batch_stops_at_the_first_label_whose_prediction_is_still_pending() -> None:
    labels = [lab(0, "a", "1", T), lab(1, "b", "1", T), lab(2, "c", "1", T)]
    assert first_pending(labels, {"b", "c"}) == 1
    assert first_pending(labels, set()) == 3


def test_regression_pairs_feed_the_error_sketch() -> None:
    spec = LabelSpec("price", PredictionKind.NUMERICAL, Task.REGRESSION, TTL)
    js = LateJoinSpec(spec, 60, 0.0, 86400.0)
    plan = resolve_late(0, [lab(0, "a", "12.5", T + TTL + 1)], {"a": pred("a", T, 10.0)}, js)
    (delta,) = plan.deltas.values()
    sketch = delta.sketch.sketch
    assert isinstance(sketch, RegressionSketch)
    assert (sketch.count, sketch.sum_sq_err) == (1, 6.25)


def test_archived_values_read_back_as_the_stream_had_them() -> None:
    assert [archived_actual(SPEC, t) for t in ("1", "1.0", "0", "fraud", "true")] == [
        "1",
        "1",
        "0",
        "fraud",
        "true",
    ]
    probs = LabelSpec("p", PredictionKind.PROBABILITIES, Task.CLASSIFICATION, TTL)
    assert archived_prediction(probs, '{"a": 0.25, "b": 0.75}') == {"a": 0.25, "b": 0.75}
    assert archived_prediction(SPEC, 0.5) == 0.5


def test_a_late_label_after_one_already_joined_is_a_duplicate() -> None:
    late = lab(9, "a", "0", T + TTL + 10)
    predictions = {"a": pred("a", T, 0.9)}
    # Joined by the stream (an in-horizon label), or by an earlier batch (a late one).
    for earlier in ([T + 30], [T + TTL + 5]):
        plan = resolve_late(0, [late], predictions, JS, {"a": earlier})
        assert plan.counts == {LateOutcome.DUPLICATE: 1}
        assert plan.deltas == {}
    # A label long before its prediction was never joined: it does not count.
    plan = resolve_late(0, [late], predictions, JS, {"a": [T - TTL - 1]})
    assert plan.counts == {LateOutcome.JOINED: 1}
    # Within one batch, an in-horizon label first makes a later late one a duplicate.
    both = [lab(0, "a", "1", T + 30), late]
    assert resolve_late(0, both, predictions, JS).counts == {
        LateOutcome.IN_HORIZON: 1,
        LateOutcome.DUPLICATE: 1,
    }


def test_an_archived_label_its_model_cannot_take_is_invalid_and_joins_nothing() -> None:
    # Archived before the stream checked labels first (or while labels were off): the
    # late join counts it instead of failing every run at the same cursor, and it does
    # not make the prediction's valid label a duplicate.
    spec = LabelSpec("price", PredictionKind.NUMERICAL, Task.REGRESSION, TTL)
    js = LateJoinSpec(spec, 60, 0.0, 7 * 86400.0)
    late = T + 5 + TTL + 1
    labels = [
        lab(0, "a", "N/A", late),
        lab(1, "a", "true", late),
        lab(2, "a", "nan", late),
        lab(3, "a", '"12.5"', late),
        lab(4, "a", "12.5", late),
    ]
    plan = resolve_late(0, labels, {"a": pred("a", T + 5, 11.0)}, js)
    assert plan.counts == {LateOutcome.INVALID: 4, LateOutcome.JOINED: 1}
    (delta,) = plan.deltas.values()
    assert (delta.labeled, delta.unlabeled) == (1, -1)
    sketch = delta.sketch.sketch
    assert isinstance(sketch, RegressionSketch) and sketch.count == 1
