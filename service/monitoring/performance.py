"""Concept drift per window: once a window's labels are in, judge its performance.

A window's performance is final when no prediction of it can still arrive and
none can still be joined: the predictions' closing watermark has passed the
window's end plus the allowed lateness, and the labels' closing watermark its
end plus the join TTL (by then every prediction of the window was joined or
swept as unlabelled). Both closing watermarks come from the same
:class:`service.monitoring.watermarks.Finality` as data drift's (shared within a replica,
so with the consumer's progress): the one rule by which a window is final.

The report holds the metrics of the merged partition sketches, the sample
sizes, the label coverage (labelled / predicted) and the window-level
degradation verdict against the model's configured reference performance.
Reports are unique per (model, version, window): replicas racing store one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from consumers.detectors import ALARM_RULE
from consumers.labels import LabelSpec
from db.detectors import AlarmRepository
from db.join import PerformanceAggregateRepository, PerformanceWindow
from db.outbox import event_payload, last_event
from db.performance_reports import PerformanceReportRepository, PerformanceVerdict
from db.repositories import OffsetRepository
from db.session import transaction
from drift.errors import DriftError
from drift.performance import ClassificationSketch, PerformanceMetrics, PerformanceSketch
from drift.stats.degradation import DegradationVerdict, accuracy_drop, error_increase
from service.alerts.conditions import CONCEPT_DRIFT, PERFORMANCE_DEGRADATION, condition
from service.monitoring.unjudged import Unjudged
from service.monitoring.watermarks import Finality, as_bound

log = logging.getLogger(__name__)
# Reports read per model to restore the gauges after a restart: enough to hold the
# newest report of every version the gauges keep (service.metrics.KEEP_VERSIONS).
_RESTORED_REPORTS = 200


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A model's reference performance: accuracy or MSE, with the events behind it."""

    accuracy: float | None = None
    mse: float | None = None
    n: int | None = None
    mse_variance: float | None = None


@dataclass(frozen=True, slots=True)
class PerformanceJudging:
    """How one model's windows are judged once labelled (from ``models.*.labels``)."""

    spec: LabelSpec
    window_seconds: int
    allowed_lateness: int
    reference: ReferenceValue | None = None
    min_labeled: int = 200
    alpha: float = 0.05
    alarm_rule: bool = False  # the default alarm rule watches the model's joined pairs


@dataclass(frozen=True, slots=True)
class PerformanceSettings:
    predictions_topic: str
    labels_topic: str
    consumer_group: str
    idle_partition_timeout: float = 60.0
    backfill: float = 86400.0


def degradation(
    judging: PerformanceJudging, window: PerformanceWindow
) -> DegradationVerdict | None:
    """The window's verdict against the reference; None without a reference."""
    ref = judging.reference
    if ref is None:
        return None
    sketch = window.sketch.sketch
    if isinstance(sketch, ClassificationSketch):
        assert ref.accuracy is not None
        return accuracy_drop(
            ref.accuracy,
            ref.n,
            sketch.correct,
            sketch.count,
            alpha=judging.alpha,
            min_labeled=judging.min_labeled,
        )
    assert ref.mse is not None
    with_var = ref.n is not None and ref.mse_variance is not None
    return error_increase(
        ref.mse,
        ref.n if with_var else None,
        ref.mse_variance if with_var else None,
        sketch.sum_sq_err,
        sketch.sum_sq_sq_err,
        sketch.count,
        alpha=judging.alpha,
        min_labeled=judging.min_labeled,
    )


def concept_drift(
    alarms: Mapping[str, int], alarm_rule: bool, labeled: int, min_labeled: int
) -> bool | None:
    """The window's concept-drift verdict: did the default alarm rule fire in it?

    True when the rule raised an alarm for a pair whose prediction lies in the
    window, False when it watched at least ``min_labeled`` of the window's
    pairs without one, None without the rule or with fewer pairs: no evidence
    (a stretch without labels) is no verdict, and so never resolves a firing
    concept-drift alert. The window-level degradation test is reported beside
    it (``degraded``) but does not make the verdict: at its alpha it flags
    about one stationary window in twenty, while the rule raises no alarm on
    long stationary streams.

    >>> concept_drift({"rule": 1}, True, 0, 200), concept_drift({}, True, 200, 200)
    (True, False)
    >>> print(concept_drift({}, False, 200, 200), concept_drift({}, True, 0, 200))
    None None
    """
    if alarms.get(ALARM_RULE, 0) > 0:
        return True
    return False if alarm_rule and labeled >= min_labeled else None


class PerformanceObserver(Protocol):
    """What the evaluator reports of each performance report it stored, after the commit,
    and (``newest``, once after start-up) of each version's newest stored report, so that
    gauges read the same before and after a restart;
    :class:`service.metric_feeds.ReportMetrics` exports them."""

    def performance_report(self, verdict: PerformanceVerdict) -> None: ...

    def newest(
        self, model: str, version: str, coverage: float | None, values: PerformanceMetrics
    ) -> None: ...

    def performance_unjudged(self, model: str) -> None:
        """A window of ``model`` that cannot be judged (:mod:`service.monitoring.unjudged`)."""


class NoPerformanceObserver:
    def performance_report(self, verdict: PerformanceVerdict) -> None:
        pass

    def newest(
        self, model: str, version: str, coverage: float | None, values: PerformanceMetrics
    ) -> None:
        pass

    def performance_unjudged(self, model: str) -> None:
        pass


class PerformanceEvaluator:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        models: Mapping[str, PerformanceJudging],
        settings: PerformanceSettings,
        observer: PerformanceObserver | None = None,
        clock: Callable[[], float] = time.time,
        finality: Finality | None = None,
    ) -> None:
        self._sessions = sessions
        self._models = models
        self._settings = settings
        self._observer: PerformanceObserver = observer or NoPerformanceObserver()
        self._clock = clock
        self.finality = finality or Finality(settings.idle_partition_timeout)
        self._restored = False
        self.unjudged = Unjudged("performance", self._observer.performance_unjudged)

    def tick(self) -> list[int]:
        """Report every window whose labels are final and that has no report yet."""
        if not self._models:
            return []
        if not self._restored:
            self._restore_gauges()
        s = self._settings
        now = self._clock()
        with self._sessions() as session:
            offsets = OffsetRepository(session, s.consumer_group)
            predictions = self.finality.closing(offsets, s.predictions_topic, now)
            labels = self.finality.closing(offsets, s.labels_topic, now)
        if predictions is None or labels is None:
            return []
        written: list[int] = []
        for model, judging in self._models.items():
            ended_by = min(predictions - judging.allowed_lateness, labels - judging.spec.join_ttl)
            written.extend(self._evaluate_model(model, judging, ended_by))
        return written

    def _evaluate_model(
        self, model: str, judging: PerformanceJudging, ended_by: float
    ) -> list[int]:
        with self._sessions() as session:
            aggregates = PerformanceAggregateRepository(session)
            newest = aggregates.newest_window_start(model)
            if newest is None:
                return []
            since = newest - timedelta(seconds=self._settings.backfill + judging.spec.join_ttl)
            todo = aggregates.windows(model, since, as_bound(ended_by))
            done = PerformanceReportRepository(session).reported(model, since)
        written = []
        for version, start, _ in todo:
            if (version, start) in done:
                continue
            try:
                report_id = self._evaluate_window(model, judging, version, start)
            except DriftError as exc:
                self.unjudged.skip(model, version, start, exc)
                continue
            if report_id is not None:
                written.append(report_id)
        return written

    def _evaluate_window(
        self, model: str, judging: PerformanceJudging, version: str, start: datetime
    ) -> int | None:
        with transaction(self._sessions) as session:
            result = judge_window(session, model, judging, version, start)
            if result is None:
                return None
            now = datetime.fromtimestamp(self._clock(), UTC)
            report_id = PerformanceReportRepository(session).add(result, now)
            if report_id is not None:
                _performance_alerts(session, result, report_id, now)
        if report_id is not None:
            self._observer.performance_report(result)
            log.info(
                "performance report %d: %s/%s window %s, %d of %d labelled: %s",
                report_id,
                model,
                version,
                start.isoformat(),
                result.labeled,
                result.predicted,
                result.verdict,
            )
        return report_id

    def _restore_gauges(self) -> None:
        """Show each version's newest stored report, as the process before a restart did."""
        with self._sessions() as session:
            repo = PerformanceReportRepository(session)
            rows = [row for model in self._models for row in repo.rows(model, _RESTORED_REPORTS)]
        newest = {(row.model, row.model_version): row for row in rows}  # rows: oldest first
        for row in sorted(newest.values(), key=lambda r: (r.window_start, r.id)):
            try:
                metrics = PerformanceSketch.from_bytes(row.sketch).metrics()
            except DriftError as exc:
                # Only these gauges stay empty until the next report; judging goes on.
                log.error("performance report %d cannot be read for the gauges: %s", row.id, exc)
                continue
            self._observer.newest(row.model, row.model_version, row.label_coverage, metrics)
        self._restored = True


def judge_window(
    session: Session, model: str, judging: PerformanceJudging, version: str, start: datetime
) -> PerformanceVerdict | None:
    """The verdict on one window from its aggregates as they stand (None: none stored).

    Used for a window's first report and, when late labels change its
    aggregates, for each revision (:mod:`service.monitoring.late_labels`).
    """
    window = PerformanceAggregateRepository(session).window(
        model, version, start, judging.spec.layout
    )
    if window is None:
        return None
    verdict = degradation(judging, window)
    if verdict is not None:
        text = verdict.reason
    else:
        text = f"no reference performance configured (models.{model}.labels.reference)"
    end = start + timedelta(seconds=judging.window_seconds)
    alarms = AlarmRepository(session).in_window(model, version, start, end)
    if alarms:
        names = ", ".join(f"{name} {n}" for name, n in sorted(alarms.items()))
        text += f"; detector alarms: {names}"
    return PerformanceVerdict(
        model=model,
        model_version=version,
        window_start=int(start.timestamp()),
        window_seconds=judging.window_seconds,
        predicted=window.predicted,
        labeled=window.labeled,
        unlabeled=window.unlabeled,
        sketch=window.sketch,
        metrics=window.sketch.metrics(),
        degradation=verdict,
        verdict=text,
        alarms=alarms,
        concept_drift=concept_drift(
            alarms, judging.alarm_rule, window.labeled, judging.min_labeled
        ),
    )


def _performance_alerts(
    session: Session, result: PerformanceVerdict, report_id: int, now: datetime
) -> None:
    """Degradation and concept drift each fire on a window showing them, resolve on a clean one."""
    where = f"{result.model}/{result.model_version}"
    details = {
        "report_id": report_id,
        "model_version": result.model_version,
        "window_start": result.window_start,
        "verdict": result.verdict,
    }
    degraded = None if result.degradation is None else result.degradation.degraded
    condition(
        session,
        result.model,
        PERFORMANCE_DEGRADATION,
        degraded,
        f"report-{report_id}",
        f"performance degraded in {where}: {result.verdict} (report {report_id})",
        now,
        details,
    )
    condition(
        session,
        result.model,
        CONCEPT_DRIFT,
        result.concept_drift,
        f"report-{report_id}",
        f"concept drift in {where}: {result.verdict} (report {report_id})",
        now,
        details,
    )


def revision_alerts(
    session: Session, result: PerformanceVerdict, report_id: int, revision: int, now: datetime
) -> None:
    """A revised report (late labels) fires or resolves the degradation alert as a first
    report does, unless the alert's state was last set from a newer window.

    With labels that come days late a window's first report has too few labels for a
    verdict, so its revisions are the only reports that can show a degradation. An
    older window's revision must not undo what a newer window showed, though: the
    state follows the newest window judged. Concept drift is the streaming
    detectors' verdict, which a revision leaves as it was.
    """
    if result.degradation is None:
        return
    last = last_event(session, result.model, PERFORMANCE_DEGRADATION, result.model_version)
    set_from = None if last is None else event_payload(last).get("window_start")
    if isinstance(set_from, int) and set_from > result.window_start:
        return
    where = f"{result.model}/{result.model_version}"
    condition(
        session,
        result.model,
        PERFORMANCE_DEGRADATION,
        result.degradation.degraded,
        f"report-{report_id}-revision-{revision}",
        f"performance degraded in {where}: {result.verdict} "
        f"(report {report_id}, revision {revision}: late labels)",
        now,
        {
            "report_id": report_id,
            "revision": revision,
            "model_version": result.model_version,
            "window_start": result.window_start,
            "verdict": result.verdict,
        },
    )
