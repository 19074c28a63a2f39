"""Synthetic two-version streams, stored the way the ingestion loop stores them.

Events are decoded by the real decoder, folded into window deltas by the real
:class:`WindowAccumulator`, registered for the label join by the real
:class:`JoinBuffer` and written with their offsets in one
:class:`CheckpointStore` transaction per partition, as a flush does. Accuracy is
exact by construction (every version's ``j``-th labelled prediction is right
when ``j % 100`` is below the accuracy in percent), so a test's premise about it
never rests on a draw; prediction scores and the split are seeded draws. Latencies
(``latency_ms``, lognormal times the version's ``latency_scale``) come from a
generator of their own, so the other draws are the same with or without them.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from consumers.checkpoint import CheckpointStore
from consumers.events import EventDecoder, LabelEvent, PredictionEvent
from consumers.join import JoinBatch
from consumers.labels import JoinBuffer, LabelSpec
from consumers.window import WindowAccumulator
from db.repositories import OffsetAdvance
from drift.performance import Task
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec

# A multiple of 60: windows of a minute start at T.
T = 1_800_000_000
WINDOW = 60
PARTITIONS = 2
SCORE_EDGES = tuple(round(0.1 * i, 1) for i in range(1, 10))
AMOUNT = (FeatureSpec("amount", FeatureKind.NUMERICAL, edges=(0.0, 10.0, 100.0)),)

FRAUD = ModelSpec(
    "fraud",
    AMOUNT,
    PredictionSpec(PredictionKind.NUMERICAL, SCORE_EDGES),
    window_seconds=WINDOW,
    allowed_lateness_seconds=10,
)
CHURN = ModelSpec(
    "churn", AMOUNT, PredictionSpec(PredictionKind.CATEGORICAL), window_seconds=WINDOW
)
PRICE = ModelSpec(
    "price",
    AMOUNT,
    PredictionSpec(PredictionKind.NUMERICAL, (0.0, 5.0, 10.0, 15.0, 20.0)),
    window_seconds=WINDOW,
)
DECODER = EventDecoder({"fraud": FRAUD, "churn": CHURN, "price": PRICE})
LABELS = {
    "fraud": LabelSpec("fraud", PredictionKind.NUMERICAL, Task.CLASSIFICATION, 3600.0),
    "churn": LabelSpec("churn", PredictionKind.CATEGORICAL, Task.CLASSIFICATION, 3600.0),
    "price": LabelSpec("price", PredictionKind.NUMERICAL, Task.REGRESSION, 3600.0),
}


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T + seconds, UTC)


@dataclass(frozen=True, slots=True)
class Version:
    """How one version behaves: its share of traffic, its predictions and its accuracy
    (classification) or error scale (regression)."""

    name: str
    share: float
    shift: float = 0.0
    accuracy_percent: int = 90
    error_scale: float = 1.0
    # The version's latencies as a multiple of a lognormal one; None: no latency_ms.
    latency_scale: float | None = 1.0


@dataclass
class Events:
    predictions: list[PredictionEvent] = field(default_factory=list)
    labels: list[LabelEvent] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def extend(self, other: Events) -> None:
        self.predictions += other.predictions
        self.labels += other.labels
        for name, n in other.counts.items():
            self.counts[name] = self.counts.get(name, 0) + n


def _prediction(model: str, score: float, klass: str) -> float | str:
    if model == "churn":
        return klass
    if model == "price":
        return round(20.0 * score, 4)
    return round(score, 4)


def _label(
    model: str, v: Version, prediction: float | str, klass: str, right: bool, noise: float
) -> object:
    if model == "price":
        # An absolute error of mean ``error_scale`` (exponential), on either side.
        return float(prediction) + v.error_scale * noise * (1.0 if right else -1.0)
    return klass if right else ("0" if klass == "1" else "1")


def stream(
    rng: np.random.Generator,
    versions: tuple[Version, Version],
    n: int,
    start: float,
    seconds: float,
    model: str = "fraud",
    tag: str = "",
) -> Events:
    """``n`` events of ``model`` evenly spread over [T + start, T + start + seconds),
    each version drawn at its share, each labelled 5 s after its prediction. ``tag``
    keeps the event ids of streams of one model and start apart."""
    out = Events()
    latencies = np.random.default_rng(zlib.crc32(f"{model}/{tag}/{start}".encode()))
    for i in range(n):
        v = versions[0] if rng.random() >= versions[1].share else versions[1]
        j = out.counts.get(v.name, 0)
        out.counts[v.name] = j + 1
        score = float(np.clip(rng.beta(2.0, 5.0) + v.shift, 0.0, 1.0))
        noise = float(rng.exponential(1.0))
        klass = "1" if score >= 0.5 else "0"
        prediction = _prediction(model, score, klass)
        t = T + start + seconds * i / n
        event_id = f"{model}-{tag}{start}-{i}"
        raw: dict[str, object] = {
            "event_id": event_id,
            "model": model,
            "model_version": v.name,
            "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
            "features": {"amount": float(rng.exponential(20.0))},
            "prediction": prediction,
        }
        latency = float(latencies.lognormal(1.5, 0.5))
        if v.latency_scale is not None:
            raw["latency_ms"] = round(v.latency_scale * latency, 3)
        out.predictions.append(DECODER.decode_prediction(json.dumps(raw).encode()))
        right = j % 100 < v.accuracy_percent
        label = {
            "event_id": event_id,
            "model": model,
            "label": _label(model, v, prediction, klass, right, noise),
            "timestamp": datetime.fromtimestamp(t + 5.0, UTC).isoformat(),
        }
        out.labels.append(DECODER.decode_label(json.dumps(label).encode()))
    return out


class Ingestion:
    """Stores events as the ingestion loop does, one flush per partition per call."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.store = CheckpointStore(sessions, "g1", lambda: T + 10_000.0)
        self.offsets: dict[tuple[str, int], int] = {}
        self.watermarks: dict[tuple[str, int], float] = {}

    def add(self, events: Events) -> None:
        """Flush ``events`` (in time order) spread over the partitions by index."""
        for p in range(PARTITIONS):
            self._flush(p, events.predictions[p::PARTITIONS], events.labels[p::PARTITIONS])

    def _advance(self, topic: str, p: int, n: int, watermark: float | None) -> OffsetAdvance:
        expected = self.offsets.get((topic, p))
        self.offsets[(topic, p)] = (expected or 0) + n
        if watermark is not None:
            self.watermarks[(topic, p)] = watermark
        return OffsetAdvance(topic, p, expected, (expected or 0) + n, watermark)

    def _flush(self, p: int, predictions: list[PredictionEvent], labels: list[LabelEvent]) -> None:
        windows = WindowAccumulator(DECODER.codecs)
        join = JoinBuffer(LABELS)
        watermark = windows.add_partition_batch(
            p,
            predictions,
            self.watermarks.get(("predictions", p)),
            on_late=lambda model, n: None,
            on_accepted=lambda m, v, s, evs: join.add_predictions(p, m, v, s, evs),
        )
        for label in labels:
            join.add_label(p, label)
        label_mark = max((x.event_time for x in labels), default=None)
        advances = [
            self._advance("predictions", p, len(predictions), watermark),
            self._advance("labels", p, len(labels), label_mark),
        ]
        batch = JoinBatch(
            join.predictions.get(p, []),
            join.labels.get(p, []),
            label_watermarks={} if label_mark is None else {p: label_mark},
            prediction_watermarks={} if watermark is None else {p: watermark},
            specs=LABELS,
            windows={name: WINDOW for name in LABELS},
        )
        self.store.commit(advances, windows.take(), batch)
