"""The synthetic producer's concept drift: labels agree with the predicted class at a set rate."""

from __future__ import annotations

import msgspec
import pytest

from consumers.labels import LabelSpec
from consumers.synthetic import SyntheticPlan, SyntheticStream
from drift.performance import Task
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec


def _spec(kind: PredictionKind) -> ModelSpec:
    features = (
        FeatureSpec("amount", FeatureKind.NUMERICAL),
        FeatureSpec("age", FeatureKind.NUMERICAL),
        FeatureSpec("country", FeatureKind.CATEGORICAL),
    )
    return ModelSpec("fraud", features, PredictionSpec(kind), window_seconds=60)


@pytest.mark.parametrize("kind", list(PredictionKind))
def test_accuracy_drops_at_the_concept_drift_point(kind: PredictionKind) -> None:
    plan = SyntheticPlan(
        _spec(kind),
        rate=1.0,
        accuracy=0.9,
        accuracy_after=0.8,
        concept_drift_at=10_000.0,
        seed=3,
    )
    # The join's own reading of predictions and labels decides what is correct.
    join = LabelSpec("fraud", kind, Task.CLASSIFICATION, join_ttl=60.0)
    correct = [0, 0]
    for event in SyntheticStream(plan).events(20_000):
        predicted, _, _ = join.outcome(msgspec.json.decode(event.prediction)["prediction"])
        actual = join.actual(msgspec.json.decode(event.label)["label"])
        correct[event.event_time >= 10_000.0] += predicted == actual
    before, after = correct[0] / 10_000, correct[1] / 10_000
    assert before == pytest.approx(0.9, abs=0.01)
    assert after == pytest.approx(0.8, abs=0.01)


def test_without_accuracy_labels_follow_the_score_as_before() -> None:
    spec = _spec(PredictionKind.NUMERICAL)
    plain = list(SyntheticStream(SyntheticPlan(spec, seed=5)).events(50))
    again = list(SyntheticStream(SyntheticPlan(spec, seed=5, accuracy=None)).events(50))
    assert plain == again
    assert SyntheticPlan(spec).accuracy_at(1e9) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accuracy": 1.5}, "accuracy must be in"),
        ({"accuracy_after": 0.8, "concept_drift_at": 10.0}, "need accuracy"),
        ({"accuracy": 0.9, "accuracy_after": 0.8}, "together"),
    ],
)
def test_inconsistent_concept_drift_settings_are_refused(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SyntheticPlan(_spec(PredictionKind.NUMERICAL), **kwargs)  # type: ignore[arg-type]


class _Recorder:
    """A producer that records what was sent, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> _Done:
        self.sent.append((topic, value))
        return _Done()

    def flush(self) -> None: ...


class _Done:
    def get(self, timeout: float) -> None: ...


def test_delayed_labels_come_after_their_predictions_stamped_when_observed() -> None:
    from datetime import datetime

    from consumers.synthetic import produce

    spec = ModelSpec(
        "m",
        (FeatureSpec("x", FeatureKind.NUMERICAL),),
        PredictionSpec(PredictionKind.NUMERICAL),
        window_seconds=60,
    )
    stream = SyntheticStream(SyntheticPlan(spec, rate=10.0, start=1_800_000_000.0))
    producer = _Recorder()
    report = produce(producer, [stream], 500, "p", "l", label_delay=5.0, seed=3)
    assert report.sent == report.labels == 500

    def seconds(value: bytes) -> float:
        return datetime.fromisoformat(msgspec.json.decode(value)["timestamp"]).timestamp()

    predicted_at: dict[str, tuple[int, float]] = {}
    label_order = []
    for position, (topic, value) in enumerate(producer.sent):
        event_id = msgspec.json.decode(value)["event_id"]
        if topic == "p":
            predicted_at[event_id] = (position, seconds(value))
            continue
        label_order.append(event_id)
        sent_at, t = predicted_at[event_id]
        assert sent_at < position
        assert t <= seconds(value) <= t + 5.0
    assert sorted(label_order) == sorted(predicted_at)
    assert label_order != sorted(label_order)  # late and out of order
