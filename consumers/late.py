"""The late-label join's decisions: which archived labels it joins, and what they add.

The streaming join (:mod:`consumers.join`) joins a prediction and a label
whose event times are at most the model's horizon (``labels.join_ttl``)
apart; a label later than that is counted ``late`` there and left to this
batch join, which reads the label archive in offset order per partition and
looks up each label's prediction in the prediction archive. So every pair
belongs to exactly one of the two joins, decided by event times alone.

A late pair moves its prediction from ``unlabeled`` (counted when the horizon
ran out) to ``labeled`` in the prediction's window, and its outcome goes into
the window's performance sketch: once both joins are done a window holds
``predicted = labeled + unlabeled``, as with the streaming join alone. A
prediction that itself arrived after its window closed was archived but never
counted (the archive marks it ``arrived_late``), so its labels join nothing.

Everything here is pure; :mod:`service.monitoring.late_labels` reads and writes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec

from consumers.errors import InvalidEvent, InvalidReason
from consumers.labels import LabelSpec
from db.archive.late import ArchivedLabel, ArchivedPrediction
from db.join import PerformanceDelta, PerformanceKey
from drift.performance import Task
from drift.schema import PredictionKind


class LateOutcome(StrEnum):
    """What the batch join made of an archived label; the ``outcome`` of its counter."""

    JOINED = "joined"  # joined to a prediction more than the horizon earlier
    IN_HORIZON = "in_horizon"  # its prediction is within the horizon: the stream's pair
    DUPLICATE = "duplicate"  # a label of a prediction an earlier label was joined to
    ORPHANED = "orphaned"  # no archived prediction within max_delay before it
    # Its prediction arrived after its window closed, so no window counted it (the
    # streaming join never saw it either and counts such a label orphaned).
    UNCOUNTED = "uncounted"
    # Its value is not one the model's labels take (the stream dead-letters such a label;
    # an archive written before that check, or while labels were off, may hold one).
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class LateJoinSpec:
    """One model's late join: its label settings, window length and longest delay."""

    spec: LabelSpec
    window_seconds: int
    allowed_lateness: float
    max_delay: float

    @property
    def horizon(self) -> float:
        return self.spec.join_ttl


@dataclass(slots=True)
class LatePlan:
    """What one batch of one partition adds: aggregate deltas and outcome counts."""

    deltas: dict[PerformanceKey, PerformanceDelta] = field(default_factory=dict)
    counts: Counter[LateOutcome] = field(default_factory=Counter)

    def windows(self) -> set[tuple[str, int]]:
        """(version, window start) of every window the batch changed."""
        return {(k.model_version, k.window_start) for k in self.deltas}


def decidable(labels: Sequence[ArchivedLabel], js: LateJoinSpec, final_before: float) -> int:
    """How many of ``labels`` (in offset order) can be decided now.

    A label can be once every on-time prediction it could join is in the
    archive: those are older than its time less the horizon, and predictions
    older than ``final_before`` (the partition's committed prediction
    watermark less the allowed lateness) can no longer arrive on time. The
    first label that cannot be decided stops the batch, so the cursor never
    passes it.

    >>> from consumers.labels import LabelSpec
    >>> from drift.schema import PredictionKind
    >>> from drift.performance import Task
    >>> js = LateJoinSpec(LabelSpec("m", PredictionKind.NUMERICAL, Task.CLASSIFICATION, 60.0),
    ...                   60, 0.0, 3600.0)
    >>> decidable([ArchivedLabel(0, "a", "1", 100.0), ArchivedLabel(1, "b", "1", 200.0)], js, 100.0)
    1
    """
    for i, label in enumerate(labels):
        if label.event_time - js.horizon >= final_before:
            return i
    return len(labels)


def candidates(
    labels: Sequence[ArchivedLabel], predictions: Mapping[str, ArchivedPrediction], js: LateJoinSpec
) -> list[str]:
    """Event ids whose prediction the batch would join: found, more than the horizon
    earlier than the label and at most ``max_delay``."""
    out = []
    for label in labels:
        p = predictions.get(label.event_id)
        if p is None or p.arrived_late:
            continue
        if js.horizon < label.event_time - p.event_time <= js.max_delay:
            out.append(label.event_id)
    return out


def resolve_late(
    partition: int,
    labels: Sequence[ArchivedLabel],
    predictions: Mapping[str, ArchivedPrediction],
    js: LateJoinSpec,
    earlier: Mapping[str, Sequence[float]] | None = None,
) -> LatePlan:
    """Join one partition's decidable labels (offset order) with their predictions.

    ``earlier`` holds, per event id, the times of its labels archived before the
    batch: the first label of a prediction wins, so a late label after one that
    was joined (by the stream, within the horizon, or by an earlier batch) is a
    duplicate. The caller stops the batch before a label whose prediction the
    streaming join has not swept yet (:func:`first_pending`), so that no
    prediction is moved from ``unlabeled`` before it was counted there.
    """
    earlier = earlier or {}
    plan = LatePlan()
    spec = js.spec
    actual: dict[PerformanceKey, list[Any]] = {}
    predicted: dict[PerformanceKey, list[Any]] = {}
    scores: dict[PerformanceKey, list[float | None]] = {}
    seen: set[str] = set()
    for label in labels:
        try:
            actual_value = archived_actual(spec, label.label)
        except InvalidEvent:
            plan.counts[LateOutcome.INVALID] += 1
            continue
        p = predictions.get(label.event_id)
        delay = None if p is None else label.event_time - p.event_time
        if p is None or delay is None or delay > js.max_delay:
            plan.counts[LateOutcome.ORPHANED] += 1
            continue
        if p.arrived_late:
            plan.counts[LateOutcome.UNCOUNTED] += 1
            continue
        if delay <= js.horizon:
            plan.counts[LateOutcome.IN_HORIZON] += 1
            seen.add(label.event_id)
            continue
        joined_before = any(
            t - p.event_time >= -js.horizon for t in earlier.get(label.event_id, ())
        )
        if label.event_id in seen or joined_before:
            plan.counts[LateOutcome.DUPLICATE] += 1
            continue
        seen.add(label.event_id)
        start = int(p.event_time // js.window_seconds) * js.window_seconds
        key = PerformanceKey(
            spec.model, p.model_version, start, js.window_seconds, partition, spec.layout
        )
        delta = plan.deltas.get(key)
        if delta is None:
            delta = plan.deltas[key] = PerformanceDelta(spec.empty_sketch())
        delta.labeled += 1
        delta.unlabeled -= 1
        cls, value, score = spec.outcome(archived_prediction(spec, p.prediction))
        actual.setdefault(key, []).append(actual_value)
        if spec.task is Task.REGRESSION:
            predicted.setdefault(key, []).append(value)
        else:
            predicted.setdefault(key, []).append(cls)
            scores.setdefault(key, []).append(score)
        plan.counts[LateOutcome.JOINED] += 1
    for key, values in actual.items():
        plan.deltas[key].sketch.update(values, predicted[key], scores.get(key))
    return plan


def first_pending(labels: Sequence[ArchivedLabel], pending: Collection[str]) -> int:
    """Index of the first label whose prediction is still pending in SQL, else len(labels).

    >>> first_pending([ArchivedLabel(0, "a", "1", 1.0), ArchivedLabel(1, "b", "1", 2.0)], {"b"})
    1
    """
    for i, label in enumerate(labels):
        if label.event_id in pending:
            return i
    return len(labels)


_decode = msgspec.json.Decoder()


def archived_prediction(spec: LabelSpec, value: float | str) -> Any:
    """A prediction as the stream had it: probabilities are archived as JSON text."""
    if spec.prediction is PredictionKind.PROBABILITIES and isinstance(value, str):
        return _decode.decode(value)
    return value


def archived_actual(spec: LabelSpec, text: str) -> Any:
    """A label's archived JSON-scalar text as the sketch takes it (as the stream would).

    Numbers come back as numbers (``1.0`` and ``1`` are one class), anything else
    stays text: a label sent as the string ``"1.0"`` is read as the class ``1``.
    A regression's label that is not a finite number is InvalidEvent, as in the stream.

    >>> from drift.performance import Task
    >>> from drift.schema import PredictionKind
    >>> spec = LabelSpec("m", PredictionKind.NUMERICAL, Task.CLASSIFICATION, 60.0)
    >>> archived_actual(spec, "1.0"), archived_actual(spec, "fraud")
    ('1', 'fraud')
    """
    if spec.task is Task.REGRESSION:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InvalidEvent(
                InvalidReason.LABEL,
                f"model {spec.model!r} is a regression: expected a finite number, got {text!r}",
            )
        return value
    try:
        value = _decode.decode(text)
    except msgspec.DecodeError:
        return text
    if isinstance(value, int | float) and not isinstance(value, bool):
        return spec.actual(value)
    return text
