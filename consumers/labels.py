"""What the label join needs from events: per-model settings, outcomes, and the buffer.

A :class:`LabelSpec` says how one model's predictions and labels become the
pairs a :class:`drift.performance.PerformanceSketch` takes: the task, the
positive class, the join TTL. :class:`JoinBuffer` holds, per partition and in
offset order, what arrived since the last flush; the join itself runs in SQL
at flush time (:mod:`consumers.join`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consumers.errors import InvalidEvent, InvalidReason
from consumers.events import LabelEvent, PredictionEvent
from db.join import LabelRecord, PredictionRecord
from drift.performance import DEFAULT_ERROR_EDGES, PerformanceSketch, Task
from drift.schema import PredictionKind


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """How one model's labels join its predictions.

    For classification, a numerical prediction is the score of
    ``positive_label``, and the predicted class is ``positive_label`` at or
    above ``threshold``, else ``negative_label``; a probabilities prediction
    gives its most probable class and the probability of ``positive_label``;
    a categorical one is the class itself (no score). For regression the
    prediction must be numerical and so must the label.
    """

    model: str
    prediction: PredictionKind
    task: Task
    join_ttl: float
    positive_label: str = "1"
    negative_label: str = "0"
    threshold: float = 0.5
    layout: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.join_ttl <= 0:
            raise ValueError(f"model {self.model!r}: join TTL must be positive")
        if self.task is Task.REGRESSION and self.prediction is not PredictionKind.NUMERICAL:
            raise ValueError(f"model {self.model!r}: regression needs a numerical prediction")
        object.__setattr__(self, "layout", _layout(self))

    def empty_sketch(self) -> PerformanceSketch:
        return PerformanceSketch.empty(self.task, positive_label=self.positive_label)

    def outcome(self, prediction: Any) -> tuple[str | None, float | None, float | None]:
        """(predicted class, predicted number, positive-class score) of one prediction."""
        if self.task is Task.REGRESSION:
            return None, float(prediction), None
        kind = self.prediction
        if kind is PredictionKind.NUMERICAL:
            p = float(prediction)
            label = self.positive_label if p >= self.threshold else self.negative_label
            return label, None, p if 0.0 <= p <= 1.0 else None
        if kind is PredictionKind.CATEGORICAL:
            return prediction if type(prediction) is str else str(prediction), None, None
        if isinstance(prediction, dict):
            top = str(max(prediction, key=prediction.__getitem__))
            return top, None, prediction.get(self.positive_label)
        top = str(max(range(len(prediction)), key=prediction.__getitem__))
        index = int(self.positive_label) if self.positive_label.isdigit() else -1
        return top, None, prediction[index] if 0 <= index < len(prediction) else None

    def actual(self, label: float | str | int | bool) -> str:
        """The label as stored: a class as text, or a regression target's repr.

        Raises InvalidEvent when a regression label is not a finite number.
        """
        if self.task is Task.REGRESSION:
            if (
                not isinstance(label, int | float)
                or isinstance(label, bool)
                or not math.isfinite(label)
            ):
                raise InvalidEvent(
                    InvalidReason.LABEL,
                    f"model {self.model!r} is a regression: expected a finite number, "
                    f"got {label!r}",
                )
            return repr(float(label))
        if type(label) is float and label.is_integer():
            return str(int(label))  # 1.0 and 1 are one class
        return label if type(label) is str else str(label)


def _layout(spec: LabelSpec) -> str:
    parts = [str(spec.task), spec.positive_label]
    if spec.task is Task.REGRESSION:
        parts.append(",".join(map(repr, DEFAULT_ERROR_EDGES)))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


@dataclass(slots=True)
class JoinBuffer:
    """Predictions and labels read since the last flush, per partition, in offset order."""

    specs: Mapping[str, LabelSpec]
    predictions: dict[int, list[PredictionRecord]] = field(default_factory=dict)
    labels: dict[int, list[LabelRecord]] = field(default_factory=dict)
    count: int = 0

    def add_predictions(
        self,
        partition: int,
        model: str,
        version: str,
        window_start: int,
        events: list[PredictionEvent],
    ) -> None:
        """Register on-time predictions of one window for the join (late ones are not)."""
        spec = self.specs.get(model)
        if spec is None:
            return
        ttl, outcome = spec.join_ttl, spec.outcome
        out = self.predictions.setdefault(partition, [])
        for e in events:
            t = e.timestamp.timestamp()
            predicted, value, score = outcome(e.prediction)
            out.append(
                PredictionRecord(
                    partition,
                    model,
                    e.event_id,
                    version,
                    window_start,
                    t,
                    predicted,
                    value,
                    score,
                    t + ttl,
                )
            )
        self.count += len(events)

    def add_label(self, partition: int, label: LabelEvent) -> None:
        """Buffer a decoded label of a joined model; InvalidEvent if its value does not fit."""
        spec = self.specs[label.model]
        actual = spec.actual(label.label)
        self.labels.setdefault(partition, []).append(
            LabelRecord(
                partition,
                label.model,
                label.event_id,
                actual,
                label.event_time,
                label.event_time + spec.join_ttl,
            )
        )
        self.count += 1

    def take(self) -> tuple[dict[int, list[PredictionRecord]], dict[int, list[LabelRecord]]]:
        taken = self.predictions, self.labels
        self.predictions, self.labels, self.count = {}, {}, 0
        return taken

    def drop_partitions(self, partitions: set[int], *, predictions: bool, labels: bool) -> None:
        """Discard what was buffered for partitions this consumer no longer trusts."""
        for p in partitions:
            if predictions:
                self.predictions.pop(p, None)
            if labels:
                self.labels.pop(p, None)
        self.count = sum(map(len, self.predictions.values())) + sum(map(len, self.labels.values()))
