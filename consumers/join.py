"""The label join, run inside the flush transaction.

A label joins the prediction with the same (partition, model, event_id),
whichever arrives first. The state machine of one key:

- prediction, no label yet: stored in ``pending_predictions`` (unlabelled);
- label, no prediction yet: stored in ``pending_labels`` (outcome ``early``);
- both: the pair goes into the performance sketch of the prediction's window,
  the prediction stays stored as labelled until its TTL ends, so a second
  label is recognised (outcome ``duplicate``), and a parked label is removed;
- TTL over: an unlabelled prediction is counted ``unlabeled`` in its window,
  a parked label is counted ``orphaned``;
- a label more than the TTL after its prediction is not joined here (``late``):
  the TTL is the horizon of this join, and the batch join from the archive
  (:mod:`consumers.late`) takes exactly the pairs further apart.

TTLs run in event time. A prediction expires once the partition's *label*
watermark passes its event time plus the model's join TTL, a parked label once
the partition's *prediction* watermark passes its label time plus the TTL; should
the labels stop altogether, a prediction also expires two TTLs on, on the
predictions' own watermark, but never while the partition's labels topic has
messages still to read. So a backlog read after an outage joins as it would have
live, and neither topic's watermark can expire state the other topic has not
caught up with.

:func:`resolve` is pure: it decides from what SQL holds and what was buffered;
:func:`apply_join` reads, resolves and writes with one statement per batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from sqlalchemy.orm import Session

from consumers.labels import LabelSpec
from db.detectors import Alarm
from db.join import (
    JoinKey,
    JoinStateRepository,
    LabelRecord,
    PerformanceAggregateRepository,
    PerformanceDelta,
    PerformanceKey,
    PredictionRecord,
)


class LabelOutcome(StrEnum):
    """What became of a label; the ``outcome`` label of the labels counter.

    ``early`` counts labels parked before their prediction; each of those
    later counts once more, as ``joined``, ``duplicate``, ``late`` or ``orphaned``.
    ``late`` counts labels more than the horizon (``join_ttl``) after their
    prediction: not joined here, but by the batch join from the archive.
    """

    JOINED = "joined"
    DUPLICATE = "duplicate"
    EARLY = "early"
    LATE = "late"
    ORPHANED = "orphaned"
    UNKNOWN_MODEL = "unknown_model"
    IGNORED = "ignored"  # the model's labels are disabled


class JoinedPair(NamedTuple):
    """A prediction and the label it was joined with."""

    prediction: PredictionRecord
    actual: str
    label_time: float


class PartitionObserver(Protocol):
    """Sees each partition's newly joined pairs, in join order, inside the flush transaction.

    The hook for per-partition streaming detectors on the error stream
    (:class:`consumers.detectors.DetectorObserver`): state they write through
    ``session`` is committed with the offsets of both topics that produced it,
    so it is exactly-once like the aggregates, and a replay after a crash feeds
    them the same pairs again from that state. Called once per flush with
    every partition's pairs, so it can read and write its state in batches; it
    returns the alarms it raised, which the loop reports once committed.
    """

    def joined(
        self, session: Session, pairs: Mapping[int, Sequence[JoinedPair]]
    ) -> list[Alarm]: ...


@dataclass(slots=True)
class JoinBatch:
    """What one flush hands to the join: buffered events and the watermarks that moved.

    ``label_watermarks`` expire predictions, ``prediction_watermarks`` parked labels,
    each for the partitions listed; ``prediction_watermarks`` expire predictions
    too (the stalled-labels rule) except in ``labels_behind``, the partitions whose
    labels topic has messages still to read. ``specs`` are the joined models' settings,
    ``windows`` every model's window length in seconds; ``observer`` sees the
    joined pairs.
    """

    predictions: list[PredictionRecord] = field(default_factory=list)
    labels: list[LabelRecord] = field(default_factory=list)
    label_watermarks: dict[int, float] = field(default_factory=dict)
    prediction_watermarks: dict[int, float] = field(default_factory=dict)
    specs: Mapping[str, LabelSpec] = field(default_factory=dict)
    windows: Mapping[str, int] = field(default_factory=dict)
    observer: PartitionObserver | None = None
    labels_behind: frozenset[int] = frozenset()

    def partitions(self) -> set[int]:
        return (
            {r.partition for r in self.predictions}
            | {r.partition for r in self.labels}
            | set(self.label_watermarks)
            | set(self.prediction_watermarks)
        )


@dataclass(slots=True)
class JoinCounts:
    """What a committed flush did, for the metrics."""

    labels: Counter[tuple[str, LabelOutcome]] = field(default_factory=Counter)
    unlabeled: Counter[str] = field(default_factory=Counter)
    alarms: list[Alarm] = field(default_factory=list)


@dataclass(slots=True)
class JoinPlan:
    """The writes :func:`resolve` decided on."""

    new_predictions: list[PredictionRecord] = field(default_factory=list)
    new_labels: list[LabelRecord] = field(default_factory=list)
    labeled: list[tuple[JoinKey, float]] = field(default_factory=list)
    removed_labels: list[JoinKey] = field(default_factory=list)
    deltas: dict[PerformanceKey, PerformanceDelta] = field(default_factory=dict)
    joined: dict[int, list[JoinedPair]] = field(default_factory=dict)
    counts: JoinCounts = field(default_factory=JoinCounts)
    duplicate_predictions: int = 0


class _Pairs:
    """Joined pairs per performance key, fed to the sketches column-wise at the end."""

    def __init__(self) -> None:
        self.actual: dict[PerformanceKey, list[Any]] = {}
        self.predicted: dict[PerformanceKey, list[Any]] = {}
        self.scores: dict[PerformanceKey, list[float | None]] = {}

    def add(self, key: PerformanceKey, spec: LabelSpec, p: PredictionRecord, actual: str) -> None:
        if spec.task == "regression":
            self.actual.setdefault(key, []).append(float(actual))
            self.predicted.setdefault(key, []).append(p.value)
        else:
            self.actual.setdefault(key, []).append(actual)
            self.predicted.setdefault(key, []).append(p.predicted)
            self.scores.setdefault(key, []).append(p.score)


def _delta(plan: JoinPlan, key: PerformanceKey, spec: LabelSpec) -> PerformanceDelta:
    delta = plan.deltas.get(key)
    if delta is None:
        delta = plan.deltas[key] = PerformanceDelta(spec.empty_sketch())
    return delta


def _perf_key(spec: LabelSpec, window_seconds: int, p: PredictionRecord) -> PerformanceKey:
    return PerformanceKey(
        p.model, p.model_version, p.window_start, window_seconds, p.partition, spec.layout
    )


def resolve(
    batch: JoinBatch,
    stored_predictions: Mapping[JoinKey, PredictionRecord],
    stored_labels: Mapping[JoinKey, LabelRecord],
) -> JoinPlan:
    """Decide the join of one flush: new predictions first, then labels, each in offset order.

    ``stored_*`` are the rows SQL holds for the keys in ``batch``. A prediction
    whose key is already known (a duplicated prediction event) is not joined twice.
    """
    r = _Resolver(batch, stored_predictions, stored_labels)
    for p in batch.predictions:
        r.prediction(p)
    for label in batch.labels:
        r.label(label)
    return r.finish()


class _Resolver:
    """The state of one :func:`resolve` call."""

    def __init__(
        self,
        batch: JoinBatch,
        stored_predictions: Mapping[JoinKey, PredictionRecord],
        stored_labels: Mapping[JoinKey, LabelRecord],
    ) -> None:
        self.specs, self.windows = batch.specs, batch.windows
        self.plan = JoinPlan()
        self.pairs = _Pairs()
        self.known: dict[JoinKey, PredictionRecord] = dict(stored_predictions)
        self.labeled = {k for k, p in self.known.items() if p.labeled_at is not None}
        self.parked: dict[JoinKey, LabelRecord] = dict(stored_labels)
        self.new_parked: dict[JoinKey, LabelRecord] = {}
        self.new_index: dict[JoinKey, int] = {}

    def prediction(self, p: PredictionRecord) -> None:
        plan, key = self.plan, p.key
        if key in self.known or p.model not in self.specs:
            plan.duplicate_predictions += key in self.known
            return
        self.known[key] = p
        self.new_index[key] = len(plan.new_predictions)
        plan.new_predictions.append(p)
        spec = self.specs[p.model]
        _delta(plan, _perf_key(spec, self.windows[p.model], p), spec).predicted += 1
        early = self.parked.pop(key, None)
        if early is not None:  # its label came first, in an earlier flush
            plan.removed_labels.append(key)
            if early.event_time - p.event_time > spec.join_ttl:
                plan.counts.labels[(p.model, LabelOutcome.LATE)] += 1
            else:
                self.join(p, early)

    def label(self, label: LabelRecord) -> None:
        if label.model not in self.specs:
            return
        key, counts = label.key, self.plan.counts.labels
        stored = self.known.get(key)
        if stored is None:
            if key in self.parked or key in self.new_parked:
                counts[(label.model, LabelOutcome.DUPLICATE)] += 1
            else:
                self.new_parked[key] = label
                counts[(label.model, LabelOutcome.EARLY)] += 1
        elif key in self.labeled:
            counts[(label.model, LabelOutcome.DUPLICATE)] += 1
        elif label.event_time - stored.event_time > self.specs[label.model].join_ttl:
            # Past the horizon: the batch join's pair (consumers.late), whether or not
            # the prediction's expiry has come round yet.
            counts[(label.model, LabelOutcome.LATE)] += 1
        else:
            self.join(stored, label)

    def join(self, p: PredictionRecord, label: LabelRecord) -> None:
        plan = self.plan
        spec = self.specs[p.model]
        key = _perf_key(spec, self.windows[p.model], p)
        self.pairs.add(key, spec, p, label.actual)
        _delta(plan, key, spec).labeled += 1
        self.labeled.add(p.key)
        plan.joined.setdefault(p.partition, []).append(
            JoinedPair(p, label.actual, label.event_time)
        )
        plan.counts.labels[(p.model, LabelOutcome.JOINED)] += 1
        i = self.new_index.get(p.key)
        if i is not None:
            plan.new_predictions[i] = plan.new_predictions[i]._replace(labeled_at=label.event_time)
        else:
            plan.labeled.append((p.key, label.event_time))

    def finish(self) -> JoinPlan:
        plan, pairs = self.plan, self.pairs
        plan.new_labels = list(self.new_parked.values())
        for perf_key, actual in pairs.actual.items():
            scores = pairs.scores.get(perf_key)
            plan.deltas[perf_key].sketch.update(actual, pairs.predicted[perf_key], scores)
        return plan


def apply_join(session: Session, batch: JoinBatch, now: datetime) -> JoinCounts:
    """Join ``batch`` against SQL, write the result, then sweep expired state.

    Runs in the caller's transaction, after its offsets were compared and set.
    """
    repo = JoinStateRepository(session)
    specs, windows = batch.specs, batch.windows
    label_keys = [r.key for r in batch.labels if r.model in specs]
    prediction_keys = [r.key for r in batch.predictions if r.model in specs]
    stored_predictions = repo.predictions([*label_keys, *prediction_keys])
    stored_labels = repo.labels([*prediction_keys, *label_keys])
    plan = resolve(batch, stored_predictions, stored_labels)
    repo.add_predictions(plan.new_predictions)
    repo.mark_labeled(plan.labeled)
    repo.remove_labels(plan.removed_labels)
    repo.add_labels(plan.new_labels)
    counts = plan.counts
    # Predictions expire on the labels' watermark, or, should the labels stall,
    # on the predictions' own watermark two TTLs on. Labels still to read have not
    # stalled: in a backlog the predictions can be read hours ahead of their labels
    # (the client fetches the topics side by side by bytes, not by event time), and
    # expiring them then would orphan labels that came within the horizon.
    expiries = [(p, w, False) for p, w in batch.label_watermarks.items()]
    expiries += [
        (p, w, True) for p, w in batch.prediction_watermarks.items() if p not in batch.labels_behind
    ]
    for partition, watermark, stalled in sorted(expiries):
        expired = repo.expire_predictions(partition, watermark, stalled)
        for (model, version, start), n in expired.items():
            counts.unlabeled[model] += n
            spec = specs.get(model)
            if spec is None or model not in windows:
                continue  # no longer configured: dropped, not counted in a window
            key = PerformanceKey(model, version, start, windows[model], partition, spec.layout)
            _delta(plan, key, spec).unlabeled += n
    for partition, watermark in sorted(batch.prediction_watermarks.items()):
        for model, n in repo.expire_labels(partition, watermark).items():
            counts.labels[(model, LabelOutcome.ORPHANED)] += n
    aggregates = PerformanceAggregateRepository(session)
    for key, delta in plan.deltas.items():
        aggregates.add(key, delta, now)
    if batch.observer is not None and plan.joined:
        counts.alarms.extend(batch.observer.joined(session, plan.joined))
    return counts
