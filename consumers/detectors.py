"""Streaming concept-drift detectors on the joined pairs, checkpointed with the offsets.

:class:`DetectorObserver` is the label join's
:class:`~consumers.join.PartitionObserver`. Per (model, model version,
partition) it turns each newly joined pair into a per-event loss in [0, 1]
(:mod:`drift.detectors.losses`: the 0/1 error of a classifier, the clipped
scaled absolute error of a regression) and feeds the losses, in join order,
to the model's detectors: the default alarm rule (``rule``,
:class:`~drift.detectors.AlarmRule`) and any of
:data:`drift.detectors.DETECTORS` the model configures.

Exactly once: detector state is loaded from SQL and written back inside the
flush transaction that also moves both topics' offsets, so after a crash the
replay starts from the state that the stored offsets produced and feeds the
same pairs again; no pair is lost or fed twice. Each drift is stored as an
alarm row in the same transaction and returned, for the loop to count once
the transaction has committed.

Detectors run per partition, the unit a replica owns, so no two replicas ever
write one row; a model on P partitions is watched by P detectors, each
seeing about 1/P of its pairs, and the first of them to fire raises the alarm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from consumers.join import JoinedPair
from db.detectors import Alarm, AlarmRepository, DetectorKey, DetectorState, DetectorStateRepository
from drift.detectors import ADWIN, DETECTORS, AlarmRule, Detector, detector_from_state
from drift.detectors.losses import clipped_absolute_loss, zero_one_loss
from drift.performance import Task

log = logging.getLogger(__name__)

ALARM_RULE = "rule"
DETECTOR_NAMES = (ALARM_RULE, *sorted(DETECTORS))
ZERO_ONE_ONLY = frozenset({"ddm", "eddm"})  # they take 0/1 errors, not losses


def new_detector(name: str) -> Detector:
    """A fresh detector by its config name; ValueError names the known ones."""
    if name == ALARM_RULE:
        return AlarmRule()
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTOR_NAMES)}")
    return DETECTORS[name]()


def restore_detector(name: str, state: dict[str, object]) -> Detector:
    """The detector ``name`` as its ``to_state()`` left it."""
    if name == ALARM_RULE:
        return AlarmRule.from_state(state)
    return detector_from_state(name, state)


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """Which detectors watch one model, and the loss they are fed.

    ``scale`` is a regression's loss scale (see
    :func:`drift.detectors.losses.regression_scale`); classification needs none.
    """

    model: str
    task: Task
    detectors: tuple[str, ...] = (ALARM_RULE,)
    scale: float | None = None

    def __post_init__(self) -> None:
        for name in self.detectors:
            if name not in DETECTOR_NAMES:
                raise ValueError(f"unknown detector {name!r}; known: {', '.join(DETECTOR_NAMES)}")
        if len(set(self.detectors)) != len(self.detectors):
            raise ValueError(f"model {self.model!r}: a detector is listed twice")
        if self.task is Task.REGRESSION:
            if self.scale is None or not self.scale >= 0:
                raise ValueError(f"model {self.model!r}: a regression needs a loss scale")
            binary = sorted(ZERO_ONE_ONLY.intersection(self.detectors))
            if binary:
                raise ValueError(
                    f"model {self.model!r}: {', '.join(binary)} take 0/1 errors, "
                    "a regression gives losses in [0, 1]"
                )

    @property
    def loss(self) -> str:
        """The loss fed, as stored with the state: a detector fed another one starts over."""
        if self.task is Task.CLASSIFICATION:
            return "zero_one"
        return f"abs/{self.scale!r}"

    def loss_of(self, pair: JoinedPair) -> float | None:
        """The pair's loss in [0, 1]; None when the prediction holds nothing to judge."""
        p = pair.prediction
        if self.task is Task.CLASSIFICATION:
            return None if p.predicted is None else zero_one_loss(p.predicted, pair.actual)
        if p.value is None or self.scale is None:
            return None
        try:
            actual = float(pair.actual)
        except ValueError:  # a class label parked before the model became a regression
            return None
        return clipped_absolute_loss(p.value, actual, self.scale)


def _rates(detector: Detector) -> tuple[float | None, float | None]:
    """The error rate before and after the change the detector just reported, if it knows."""
    if isinstance(detector, AlarmRule):
        return detector.baseline, detector.alarm_rate
    if isinstance(detector, ADWIN) and detector.last_split is not None:
        return detector.last_split.mean_before, detector.last_split.mean_after
    return None, None


Stream = tuple[str, str, int]  # model, version, partition


class DetectorObserver:
    """Feeds each flush's joined pairs to the models' detectors, state in SQL.

    One query loads every detector the flush touches, one statement inserts
    the new ones, one updates the others, one stores the alarms.
    """

    def __init__(
        self, specs: Mapping[str, DetectorSpec], clock: Callable[[], float] = time.time
    ) -> None:
        self.specs = {m: s for m, s in specs.items() if s.detectors}
        self._clock = clock

    def joined(self, session: Session, pairs: Mapping[int, Sequence[JoinedPair]]) -> list[Alarm]:
        streams = self._streams(pairs)
        if not streams:
            return []
        states = DetectorStateRepository(session)
        stored = states.load(list(streams))
        new: list[tuple[DetectorKey, DetectorState]] = []
        changed: list[tuple[DetectorKey, DetectorState]] = []
        alarms: list[Alarm] = []
        for (model, version, partition), fed in streams.items():
            spec = self.specs[model]
            for name in spec.detectors:
                key = DetectorKey(model, version, partition, name)
                held = stored.get(key)
                state = self._feed(key, spec, held, fed, alarms)
                (new if held is None else changed).append((key, state))
        now = datetime.fromtimestamp(self._clock(), UTC)
        states.save(new, changed, now)
        AlarmRepository(session).add(alarms, now)
        return alarms

    def _streams(
        self, pairs: Mapping[int, Sequence[JoinedPair]]
    ) -> dict[Stream, list[tuple[JoinedPair, float]]]:
        """Each stream's pairs with their losses, in join order."""
        out: dict[Stream, list[tuple[JoinedPair, float]]] = {}
        specs = self.specs
        for partition, joined in sorted(pairs.items()):
            for pair in joined:
                p = pair.prediction
                spec = specs.get(p.model)
                if spec is None:
                    continue
                loss = spec.loss_of(pair)
                if loss is not None:
                    out.setdefault((p.model, p.model_version, partition), []).append((pair, loss))
        return out

    def _feed(
        self,
        key: DetectorKey,
        spec: DetectorSpec,
        held: DetectorState | None,
        fed: list[tuple[JoinedPair, float]],
        alarms: list[Alarm],
    ) -> DetectorState:
        detector = self._detector(key, spec, held)
        labeled = 0 if held is None else held.labeled
        update = detector.update
        for pair, loss in fed:
            update(loss)
            labeled += 1
            if detector.drift_detected:
                baseline, rate = _rates(detector)
                p = pair.prediction
                alarms.append(Alarm(*key, p.event_time, pair.label_time, labeled, baseline, rate))
        return DetectorState(spec.loss, labeled, detector.to_state())

    def _detector(
        self, key: DetectorKey, spec: DetectorSpec, held: DetectorState | None
    ) -> Detector:
        if held is None:
            return new_detector(key.detector)
        if held.loss != spec.loss:
            log.info(
                "%s: loss changed from %s to %s, detector starts over", key, held.loss, spec.loss
            )
            return new_detector(key.detector)
        try:
            return restore_detector(key.detector, held.state)
        except ValueError as exc:
            log.error("%s: stored state unreadable, detector starts over: %s", key, exc)
            return new_detector(key.detector)
