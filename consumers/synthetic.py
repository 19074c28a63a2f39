"""A synthetic producer of prediction and label events with a known drift point.

Used by ``make demo``, the tests and the benchmarks. Everything is seeded, so
a run is reproducible, and it reports exactly what it sent per window so that
what lands in SQL can be checked against it.

Labels follow the model's score by default (the outcome is drawn with the
predicted probability, and at random after the data-drift point). With
``accuracy`` set, the label is instead the predicted class with exactly that
probability, and ``accuracy_after`` from ``concept_drift_at`` on: concept
drift of a known size, with the features unchanged.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec
import numpy as np

from drift.schema import FeatureKind, ModelSpec, PredictionKind

CATEGORIES = ("alpha", "bravo", "charlie", "delta", "echo")
_BASE_CDF = [0.4, 0.7, 0.85, 0.95]  # cumulative shares of CATEGORIES
_DRIFT_CDF = [0.1, 0.25, 0.4, 0.7]
_BLOCK = 4096


@dataclass(frozen=True, slots=True)
class _Draws:
    z: list[Any]
    u_null: list[Any]
    u_cat: list[Any]
    u_label: list[float]
    latency: list[float]


@dataclass(frozen=True, slots=True)
class SyntheticPlan:
    """What to generate. Event time advances by ``1 / rate`` seconds per event."""

    model: ModelSpec
    model_version: str = "v1"
    rate: float = 100.0
    start: float = 0.0
    drift_at: float | None = None  # seconds of event time after ``start``
    drift_share: float = 0.5  # share of features that move at the drift point
    null_share: float = 0.02
    seed: int = 7
    # Other draws from the same distributions (e.g. a reference data set); the
    # seed alone fixes the distributions.
    draw_seed: int | None = None
    # Concept drift: the share of labels equal to the predicted class, before and
    # from ``concept_drift_at`` (seconds of event time after ``start``) on.
    accuracy: float | None = None
    accuracy_after: float | None = None
    concept_drift_at: float | None = None

    def __post_init__(self) -> None:
        for name in ("accuracy", "accuracy_after"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        after = (self.accuracy_after, self.concept_drift_at)
        if self.accuracy is None and after != (None, None):
            raise ValueError("accuracy_after and concept_drift_at need accuracy")
        if (after[0] is None) != (after[1] is None):
            raise ValueError("give accuracy_after and concept_drift_at together")

    def accuracy_at(self, event_time: float) -> float | None:
        """The share of correct predictions at ``event_time``; None: labels follow the score."""
        drift_at = self.concept_drift_at
        if drift_at is not None and event_time >= self.start + drift_at:
            return self.accuracy_after
        return self.accuracy


@dataclass(frozen=True, slots=True)
class SyntheticEvent:
    key: bytes
    prediction: bytes
    label: bytes
    event_time: float


@dataclass
class SendReport:
    sent: int = 0
    labels: int = 0
    windows: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    first_event_time: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "labels": self.labels,
            "first_event_time": self.first_event_time,
            "windows": [
                {"model": m, "model_version": v, "window_start": _iso(s), "count": n}
                for (m, v, s), n in sorted(self.windows.items(), key=lambda kv: kv[0][2])
            ],
        }


class EventSource(Protocol):
    """What :func:`produce` sends from: a plan (rate, model, start) and its events by index."""

    plan: SyntheticPlan

    def event(self, index: int, event_time: float) -> SyntheticEvent: ...


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class SyntheticStream:
    """Generates events for one model; features drift at ``plan.drift_at``."""

    def __init__(self, plan: SyntheticPlan) -> None:
        self.plan = plan
        self._rng = np.random.default_rng(plan.seed)
        n = len(plan.model.features)
        self._means = self._rng.uniform(-5, 50, n)
        self._stds = self._rng.uniform(1, 10, n)
        drifting = self._rng.permutation(n)[: math.ceil(n * plan.drift_share)]
        self._drifting = set(int(i) for i in drifting)
        self._weights = self._rng.normal(0, 1, n) / np.maximum(self._stds, 1.0)
        if plan.draw_seed is not None:
            self._rng = np.random.default_rng([plan.seed, plan.draw_seed])
        self._block = _Draws([], [], [], [], [])
        self._means_l: list[float] = self._means.tolist()
        self._stds_l: list[float] = self._stds.tolist()
        self._weights_l: list[float] = self._weights.tolist()
        self._cursor = 0

    def events(self, count: int, first_index: int = 0) -> Iterator[SyntheticEvent]:
        plan = self.plan
        for i in range(first_index, first_index + count):
            t = plan.start + i / plan.rate
            yield self.event(i, t)

    def _draws(self) -> _Draws:
        """The next event's random numbers; drawn a block at a time, which is ~20x faster."""
        if self._cursor >= len(self._block.z):
            n, k = _BLOCK, len(self.plan.model.features)
            rng = self._rng
            # Plain lists: indexing them is far cheaper than numpy scalars.
            self._block = _Draws(
                z=rng.standard_normal((n, k)).tolist(),
                u_null=rng.random((n, k)).tolist(),
                u_cat=rng.random((n, k)).tolist(),
                u_label=rng.random(n).tolist(),
                latency=rng.gamma(2.0, 2.0, n).tolist(),
            )
            self._cursor = 0
        i = self._cursor
        self._cursor += 1
        b = self._block
        return _Draws(b.z[i], b.u_null[i], b.u_cat[i], b.u_label[i : i + 1], b.latency[i : i + 1])

    def event(self, index: int, event_time: float) -> SyntheticEvent:
        plan = self.plan
        drifted = plan.drift_at is not None and event_time >= plan.start + plan.drift_at
        d = self._draws()
        features: dict[str, Any] = {}
        score = 0.0
        for j, f in enumerate(plan.model.features):
            moved = drifted and j in self._drifting
            if f.nullable and d.u_null[j] < plan.null_share:
                features[f.name] = None
                continue
            if f.kind is FeatureKind.NUMERICAL:
                std, mean = self._stds_l[j], self._means_l[j]
                x = mean + (2.0 * std if moved else 0.0) + std * d.z[j]
                features[f.name] = round(x, 6)
                score += self._weights_l[j] * (x - mean)
            else:
                cdf = _DRIFT_CDF if moved else _BASE_CDF
                features[f.name] = CATEGORIES[bisect.bisect_right(cdf, d.u_cat[j])]
        prob = 1.0 / (1.0 + math.exp(-score))
        accuracy = plan.accuracy_at(event_time)
        if accuracy is None:
            # After the drift point the model's score no longer explains the outcome.
            truth_p = 0.5 if drifted else prob
            label = int(d.u_label[0] < truth_p)
        else:
            predicted = _predicted_class(plan, prob)
            label = predicted if d.u_label[0] < accuracy else 1 - predicted
        event_id = f"{plan.seed:04x}-{index:012d}"
        ts = _iso(event_time)
        pred = {
            "event_id": event_id,
            "model": plan.model.name,
            "model_version": plan.model_version,
            "timestamp": ts,
            "features": features,
            "prediction": _prediction(plan, prob),
            "latency_ms": round(float(d.latency[0]), 3),
        }
        lab = {"event_id": event_id, "model": plan.model.name, "label": label, "timestamp": ts}
        return SyntheticEvent(
            event_id.encode(), msgspec.json.encode(pred), msgspec.json.encode(lab), event_time
        )


def write_reference_csv(plan: SyntheticPlan, rows: int, path: Any) -> None:
    """Write ``rows`` undrifted events of ``plan`` as a reference CSV (features, prediction)."""
    import csv

    stream = SyntheticStream(plan)
    names = [f.name for f in plan.model.features]
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([*names, "prediction"])
        for i in range(rows):
            event = msgspec.json.decode(stream.event(i, plan.start).prediction)
            features = event["features"]
            writer.writerow(
                [*("" if features[n] is None else features[n] for n in names), event["prediction"]]
            )


def _predicted_class(plan: SyntheticPlan, prob: float) -> int:
    """The class the join reads from :func:`_prediction` (threshold 0.5, class 1 positive)."""
    kind = plan.model.prediction.kind
    if kind is PredictionKind.NUMERICAL:
        return int(round(prob, 5) >= 0.5)
    if kind is PredictionKind.CATEGORICAL:
        return int(prob >= 0.5)
    return int(round(prob, 5) > round(1 - prob, 5))  # the first of equal probabilities wins


def _prediction(plan: SyntheticPlan, prob: float) -> Any:
    kind = plan.model.prediction.kind
    if kind is PredictionKind.NUMERICAL:
        return round(prob, 5)
    if kind is PredictionKind.CATEGORICAL:
        return "1" if prob >= 0.5 else "0"
    return [round(1 - prob, 5), round(prob, 5)]


def produce(
    producer: Any,
    streams: Sequence[EventSource],
    count: int,
    predictions_topic: str,
    labels_topic: str | None,
    realtime: bool = False,
    clock: Callable[[], float] = time.time,
    label_delay: float = 0.0,
    seed: int = 0,
) -> SendReport:
    """Send ``count`` events per stream, interleaved; return what was sent.

    With ``realtime`` the producer paces itself to each plan's rate and stamps
    events with the wall clock, as a live model would. With ``label_delay``
    each label is observed a seeded uniform 0..``label_delay`` seconds after its
    prediction: it is stamped with that time and sent once the stream (or, in
    real time, the clock) gets there, so labels arrive late and out of order.
    """
    report = SendReport()
    began = clock()
    futures: list[Any] = []
    delays = random.Random(seed)
    held: list[tuple[float, int, bytes, bytes]] = []  # labels not yet due, by due time
    for i in range(count):
        now = 0.0
        for stream in streams:
            plan = stream.plan
            if realtime:
                due = began + i / plan.rate
                while (wait := due - clock()) > 0:
                    time.sleep(min(wait, 0.2))
                ev = stream.event(i, clock())
            else:
                ev = stream.event(i, plan.start + i / plan.rate)
            now = max(now, ev.event_time)
            futures.append(producer.send(predictions_topic, key=ev.key, value=ev.prediction))
            if labels_topic:
                if label_delay > 0:
                    seen = ev.event_time + delays.uniform(0.0, label_delay)
                    heapq.heappush(held, (seen, len(futures), ev.key, _stamped(ev.label, seen)))
                else:
                    futures.append(producer.send(labels_topic, key=ev.key, value=ev.label))
                report.labels += 1
            report.sent += 1
            if report.first_event_time is None:
                report.first_event_time = ev.event_time
            spec = plan.model
            report.windows[(spec.name, plan.model_version, spec.window_start(ev.event_time))] += 1
        while held and held[0][0] <= now:
            _, _, key, value = heapq.heappop(held)
            futures.append(producer.send(labels_topic, key=key, value=value))
        if len(futures) >= 10_000:
            _confirm(producer, futures)
    while held:
        seen, _, key, value = heapq.heappop(held)
        if realtime:
            while (wait := seen - clock()) > 0:
                time.sleep(min(wait, 0.2))
        futures.append(producer.send(labels_topic, key=key, value=value))
    _confirm(producer, futures)
    return report


def _stamped(label: bytes, event_time: float) -> bytes:
    """The label event re-stamped with the time it was observed."""
    body = msgspec.json.decode(label)
    body["timestamp"] = _iso(event_time)
    return msgspec.json.encode(body)


def _confirm(producer: Any, futures: list[Any]) -> None:
    """Wait for acknowledgements, so the report never counts an event that was lost."""
    producer.flush()
    for f in futures:
        f.get(timeout=30)  # re-raises the send's error, if any
    futures.clear()
