"""The adapters that feed :class:`service.metrics.Metrics` from the ingestion loop's
stats hook, the evaluators' report observers, the alert worker's delivery observer and
the run driver's observer."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from db.outbox import DeliveryStatus
from db.performance_reports import PerformanceVerdict
from db.reports import WindowVerdict
from drift.canary import Check
from drift.performance import PerformanceMetrics
from retrain.rollout.lifecycle import Phase as RolloutPhase
from service.metrics import UNKNOWN, Metrics
from service.monitoring.deadletters import NoTally, Tally


class IngestMetrics:
    """:class:`consumers.stats.IngestStats` on top of :class:`Metrics`. Labels can name
    any model, configured or not: those outside ``models`` are counted as ``unknown``.
    ``tally`` also counts events and dead letters for the dead-letter rate alert."""

    def __init__(
        self, metrics: Metrics, models: Collection[str], tally: Tally | None = None
    ) -> None:
        self.m = metrics
        self._models = frozenset(models)
        self.tally: Tally = tally or NoTally()

    def _model(self, name: str) -> str:
        return name if name in self._models else UNKNOWN

    def consumed(self, model: str, n: int) -> None:
        self.m.events_consumed.labels(self._model(model)).inc(n)
        self.tally.add(events=n)

    def invalid(self, reason: str) -> None:
        self.m.events_invalid.labels(reason).inc()
        self.tally.add(events=1, dead=1)

    def late(self, model: str, n: int) -> None:
        self.m.events_late.labels(self._model(model)).inc(n)
        self.tally.add(events=n)

    def flushed(self, seconds: float, events: int) -> None:
        self.m.flush_seconds.observe(seconds)
        self.m.flushed_events.inc(events)

    def flush_failed(self, reason: str) -> None:
        self.m.flush_failures.labels(reason).inc()

    def offset_conflicts(self, n: int) -> None:
        self.m.offset_conflicts.inc(n)

    def recycled(self) -> None:
        self.m.consumer_recycles.inc()

    def lag(self, topic: str, partition: int, lag: int) -> None:
        self.m.consumer_lag.labels(topic, str(partition)).set(lag)

    def healthy(self, ok: bool) -> None:
        self.m.healthy.set(1 if ok else 0)

    def labels(self, model: str, outcome: str, n: int) -> None:
        self.m.labels.labels(self._model(model), outcome).inc(n)
        if outcome != "early":  # an early label is reported again once its prediction comes
            self.tally.add(events=n)

    def unlabeled(self, model: str, n: int) -> None:
        self.m.predictions_unlabeled.labels(self._model(model)).inc(n)

    def alarms(self, model: str, model_version: str, detector: str, n: int) -> None:
        family = self.m.concept_drift_alarms
        self.m.versions.labels(family, self._model(model), model_version, detector).inc(n)


class ReportMetrics:
    """:class:`service.monitoring.evaluation.DriftObserver` and
    :class:`service.monitoring.performance.PerformanceObserver` on top of :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def drift_report(self, verdict: WindowVerdict) -> None:
        m, model, version = self.m, verdict.model, verdict.model_version
        report = verdict.report
        m.drift_reports.labels(model, str(bool(report.dataset_drift)).lower()).inc()
        m.versions.labels(m.drifted_share, model, version).set(report.drifted_share or 0.0)
        m.versions.labels(m.dataset_drift, model, version).set(1 if verdict.confirmed else 0)
        m.feature_drift(model, report.features)
        m.evaluated_window_end.labels(model).set(verdict.window_start + verdict.window_seconds)

    def drift_unjudged(self, model: str) -> None:
        self.m.windows_unjudged.labels(model, "drift").inc()

    def performance_unjudged(self, model: str) -> None:
        self.m.windows_unjudged.labels(model, "performance").inc()

    def performance_report(self, verdict: PerformanceVerdict) -> None:
        m, model, version = self.m, verdict.model, verdict.model_version
        degraded = None if verdict.degradation is None else verdict.degradation.degraded
        flag = {None: "unknown", True: "true", False: "false"}[degraded]
        m.performance_reports.labels(model, flag).inc()
        self.newest(model, version, verdict.coverage, verdict.metrics)

    def newest(
        self, model: str, version: str, coverage: float | None, values: PerformanceMetrics
    ) -> None:
        """A version's gauges read its newest report: a metric it leaves undefined is
        absent (:meth:`Metrics.performance`)."""
        if coverage is not None:
            self.m.versions.labels(self.m.label_coverage, model, version).set(coverage)
        self.m.performance(model, version, values)


class AlertMetrics:
    """:class:`service.alerts.worker.DeliveryObserver` on top of :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        self._channels: set[str] = set()

    def sent(self, channel: str) -> None:
        self.m.alerts_sent.labels(channel).inc()

    def failed(self, channel: str, retriable: bool) -> None:
        self.m.alerts_failed.labels(channel, str(retriable).lower()).inc()

    def dead(self, channel: str) -> None:
        self.m.alerts_dead.labels(channel).inc()

    def outbox(self, counts: Mapping[tuple[str, str], int]) -> None:
        """The outbox by channel and status; a status with no rows left reads 0, not the
        count it had when it last had some (the query only returns what exists)."""
        self._channels.update(channel for channel, _ in counts)
        for channel in self._channels:
            for status in DeliveryStatus:
                n = counts.get((channel, str(status)), 0)
                self.m.alert_outbox.labels(channel, str(status)).set(n)


class RolloutMetrics:
    """:class:`retrain.rollout.driver.RolloutObserver` on top of :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def state(self, model: str, phase: str | None, canary_percent: int) -> None:
        for each in RolloutPhase:
            self.m.rollout_phase.labels(model, str(each)).set(1 if each == phase else 0)
        self.m.rollout_canary_percent.labels(model).set(canary_percent)

    def analysed(self, model: str, checks: Sequence[Check]) -> None:
        for c in checks:
            self.m.rollout_analyses.labels(model, c.name, str(c.outcome)).inc()


class RetrainMetrics:
    """:class:`retrain.runs.RunObserver` on top of :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def finished(self, model: str, trigger: str, outcome: str) -> None:
        self.m.retrain_runs.labels(model, trigger, outcome).inc()

    def active(self, counts: Mapping[str, int]) -> None:
        for model, n in counts.items():
            self.m.retrain_active.labels(model).set(n)
