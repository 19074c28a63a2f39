"""Every Prometheus metric of the service (the adapters that feed them from the
ingestion loop, the alert worker and the run driver are in :mod:`service.metric_feeds`).

Each family is one row of a table (:data:`SERVICE`, :data:`HTTP`, :data:`SCHEDULER`):
the attribute that holds it, its kind, name, help, label names and buckets. The
names are what dashboards and alert rules query, so
``tests/unit/service/test_metrics.py`` pins the exported names and label names.

Label values come from the configuration (model, feature, channel and job
names) or from fixed sets in the code (methods, outcomes, statuses, route
templates), never from raw input, so the number of series stays bounded. The
one exception is ``model_version``, which the stream stamps on every event:
its series are kept for the :data:`KEEP_VERSIONS` versions of each model
reported most recently (:class:`VersionSeries`).
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from drift.performance.base import PerformanceMetrics
from drift.report import FeatureDrift

KEEP_VERSIONS = 10
UNKNOWN = "unknown"
# Performance metrics exported per model version, by the gauge they belong to.
_RATIOS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mape")
_ERRORS = ("rmse", "mae", "mean_error")
Family = TypeVar("Family", bound=MetricWrapperBase)


@dataclass(frozen=True, slots=True)
class Spec:
    """One metric family: the attribute that holds it and how Prometheus knows it."""

    attr: str
    kind: type[Counter] | type[Gauge] | type[Histogram]
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    def build(self, registry: CollectorRegistry) -> MetricWrapperBase:
        if issubclass(self.kind, Histogram):
            buckets = self.buckets or Histogram.DEFAULT_BUCKETS
            return Histogram(self.name, self.help, self.labels, registry=registry, buckets=buckets)
        if self.buckets is not None:
            raise ValueError(f"{self.name}: only a histogram has buckets")
        return self.kind(self.name, self.help, self.labels, registry=registry)


def declare(target: object, specs: Sequence[Spec], registry: CollectorRegistry) -> None:
    """Register each family of ``specs`` and set it as its attribute of ``target``."""
    for spec in specs:
        setattr(target, spec.attr, spec.build(registry))


_FLUSH_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_HTTP_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_JOB_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_MODEL = ("model",)
_VERSION = ("model", "model_version")
_FEATURE = ("model", "feature", "method")
_VERSION_METRIC = ("model", "model_version", "metric")

SERVICE: tuple[Spec, ...] = (
    # -- ingestion
    Spec("events_consumed", Counter, "driftwatch_events_consumed_total",
         "Valid prediction events processed", _MODEL),
    Spec("events_invalid", Counter, "driftwatch_events_invalid_total",
         "Events sent to the dead-letter topic", ("reason",)),
    Spec("events_late", Counter, "driftwatch_events_late_total",
         "Events whose window had closed (counted, not aggregated)", _MODEL),
    Spec("flush_seconds", Histogram, "driftwatch_flush_duration_seconds",
         "Time to make one flush durable (dead letters and SQL transaction)",
         buckets=_FLUSH_SECONDS),
    Spec("flushed_events", Counter, "driftwatch_flushed_events_total",
         "Events made durable in SQL"),
    Spec("flush_failures", Counter, "driftwatch_flush_failures_total",
         "Failed flush attempts (retried)", ("error",)),
    Spec("kubernetes_watch_errors", Counter, "driftwatch_kubernetes_watch_errors_total",
         "Failed lists or watches of the retraining Jobs (the executor then reads each Job)"),
    Spec("archive_compaction_failures", Counter, "driftwatch_archive_compaction_failures_total",
         "Archive compactions that failed (appends slow down until one succeeds)"),
    Spec("offset_conflicts", Counter, "driftwatch_offset_conflicts_total",
         "Partitions whose stored offset moved under this consumer"),
    Spec("consumer_recycles", Counter, "driftwatch_consumer_recycles_total",
         "Kafka consumers replaced after a stall while the database and dead letters answered"),
    Spec("consumer_lag", Gauge, "driftwatch_consumer_lag_messages",
         "Messages behind the partition's high watermark", ("topic", "partition")),
    Spec("labels", Counter, "driftwatch_labels_total",
         "Label events by what became of them: joined, duplicate, early (parked before "
         "their prediction, counted again when resolved), late (past the horizon, left to "
         "the late-label join), orphaned, unknown_model, ignored",
         ("model", "outcome")),
    Spec("late_labels", Counter, "driftwatch_late_labels_total",
         "Archived labels read by the late-label join, by outcome: joined, in_horizon "
         "(the streaming join's), duplicate (an earlier label was joined), orphaned, "
         "uncounted, invalid (a value the model's labels cannot take)",
         ("model", "outcome")),
    Spec("predictions_unlabeled", Counter, "driftwatch_predictions_unlabeled_total",
         "Predictions whose join TTL ran out without a label", _MODEL),
    Spec("healthy", Gauge, "driftwatch_healthy",
         "1 while the service can make progress, 0 otherwise"),
    # -- data drift
    Spec("drift_reports", Counter, "driftwatch_drift_reports_total",
         "Drift reports written, by model and dataset-drift verdict", ("model", "dataset_drift")),
    Spec("drifted_share", Gauge, "driftwatch_drifted_feature_share_ratio",
         "Share of drifted features in the newest evaluated window", _VERSION),
    Spec("dataset_drift", Gauge, "driftwatch_dataset_drift",
         "1 when the newest evaluated window drifted (confirmed), 0 otherwise", _VERSION),
    Spec("evaluated_window_end", Gauge, "driftwatch_evaluated_window_end_seconds",
         "End (epoch seconds) of the newest window with a drift report", _MODEL),
    Spec("feature_drift_score", Gauge, "driftwatch_feature_drift_score",
         "Test statistic or distance of each feature in the newest drift report (its unit "
         "is the method's)", _FEATURE),
    Spec("feature_drifted", Gauge, "driftwatch_feature_drift_detected",
         "1 when the feature drifted in the newest drift report, 0 otherwise", _FEATURE),
    # Counts what driftwatch_scheduler_job_failures_total also counts for these jobs;
    # kept because dashboards query it.
    Spec("evaluation_failures", Counter, "driftwatch_evaluation_failures_total",
         "Scheduler ticks of window evaluation or report rendering that failed", ("job",)),
    Spec("windows_unjudged", Counter, "driftwatch_windows_unjudged_total",
         "Windows skipped because their stored aggregates cannot be read or merged, by model "
         "and report kind (drift, performance; late_labels: a late-label batch held at such "
         "a window); counted once per window or batch and process, tried again every tick",
         ("model", "kind")),
    # -- labelled performance
    Spec("performance_reports", Counter, "driftwatch_performance_reports_total",
         "Performance reports written, by model and degradation verdict (true, false, unknown)",
         ("model", "degraded")),
    Spec("concept_drift_alarms", Counter, "driftwatch_concept_drift_alarms_total",
         "Concept-drift alarms of the streaming detectors on the joined error stream",
         ("model", "model_version", "detector")),
    Spec("label_coverage", Gauge, "driftwatch_label_coverage_ratio",
         "Labelled share of the predictions of the newest reported window", _VERSION),
    Spec("performance_ratio", Gauge, "driftwatch_model_performance_ratio",
         "Unitless performance metrics of the newest performance report: accuracy, "
         "precision, recall, f1, roc_auc (classification) or mape (regression)",
         _VERSION_METRIC),
    Spec("performance_error", Gauge, "driftwatch_model_error_label_units",
         "Regression errors of the newest performance report (rmse, mae, mean_error), "
         "in the units of the model's label", _VERSION_METRIC),
    # -- retraining
    Spec("retrain_runs", Counter, "driftwatch_retrain_runs_total",
         "Retraining runs this replica took to a final phase, by trigger and outcome "
         "(accepted, rejected, failed, cancelled)", ("model", "trigger", "outcome")),
    Spec("retrain_active", Gauge, "driftwatch_retrain_active_runs",
         "Retraining runs not yet finished, as of the newest retraining tick", _MODEL),
    # -- rollouts
    Spec("rollout_phase", Gauge, "driftwatch_rollout_phase",
         "1 for the phase of the model's active rollout, 0 for the others (all 0: none), "
         "as of the newest rollout tick", ("model", "phase")),
    Spec("rollout_canary_percent", Gauge, "driftwatch_rollout_canary_percent",
         "The canary's share of traffic the active rollout's step asks for (0: none)", _MODEL),
    Spec("rollout_analyses", Counter, "driftwatch_rollout_analyses_total",
         "Checks of the rollout analyses this replica stored, by check and outcome "
         "(pass, fail, inconclusive)", ("model", "check", "outcome")),
    # -- alerts
    Spec("alerts_sent", Counter, "driftwatch_alerts_sent_total",
         "Alert deliveries a channel accepted", ("channel",)),
    Spec("alerts_failed", Counter, "driftwatch_alerts_failed_total",
         "Failed alert delivery attempts, by whether they are retried", ("channel", "retriable")),
    Spec("alerts_dead", Counter, "driftwatch_alerts_dead_total",
         "Alert deliveries given up (out of attempts or refused with a 4xx)", ("channel",)),
    Spec("alert_outbox", Gauge, "driftwatch_alert_outbox_deliveries",
         "Alert deliveries in the outbox by channel and status (pending, delivered, dead, "
         "skipped)", ("channel", "status")),
)  # fmt: skip

HTTP: tuple[Spec, ...] = (
    Spec("requests", Counter, "driftwatch_http_requests_total",
         "HTTP requests the API answered, by route template (unmatched: no route), method "
         "and status", ("route", "method", "status")),
    Spec("duration", Histogram, "driftwatch_http_request_duration_seconds",
         "Time to answer an HTTP request, by route template and method", ("route", "method"),
         _HTTP_SECONDS),
)  # fmt: skip

SCHEDULER: tuple[Spec, ...] = (
    Spec("last_success", Gauge, "driftwatch_scheduler_job_last_success_timestamp_seconds",
         "When (epoch seconds) the job last finished without an error", ("job",)),
    Spec("duration", Histogram, "driftwatch_scheduler_job_duration_seconds",
         "Time one run of the job took, failed or not", ("job",), _JOB_SECONDS),
    Spec("failures", Counter, "driftwatch_scheduler_job_failures_total",
         "Runs of the job that raised (retried at its next run)", ("job",)),
    Spec("skipped", Counter, "driftwatch_scheduler_job_skipped_total",
         "Runs of the job not made: not_leader (another replica acts), misfire (too late "
         "to run), max_instances (the previous run was still going)", ("job", "reason")),
    Spec("leader", Gauge, "driftwatch_leader",
         "1 while this replica holds the leadership of its backend, 0 otherwise", ("backend",)),
)  # fmt: skip


class VersionSeries:
    """Remembers which series carry each model's versions, and removes those of all but
    the ``keep`` versions seen most recently: a model that ships a version per deploy
    would otherwise add series for ever."""

    def __init__(self, keep: int = KEEP_VERSIONS) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._recent: dict[
            str, OrderedDict[str, set[tuple[MetricWrapperBase, tuple[str, ...]]]]
        ] = {}

    def labels(self, family: Family, model: str, version: str, *rest: str) -> Family:
        """``family.labels(model, version, *rest)``, with the series remembered."""
        values = (model, version, *rest)
        with self._lock:
            versions = self._recent.setdefault(model, OrderedDict())
            versions.setdefault(version, set()).add((family, values))
            versions.move_to_end(version)
            while len(versions) > self._keep:
                _, gone = versions.popitem(last=False)
                for old_family, old_values in gone:
                    old_family.remove(*old_values)
            return family.labels(*values)


class Metrics:
    """One registry per service instance, so tests can run several side by side. The
    families are the rows of :data:`SERVICE`, set as attributes by :func:`declare`."""

    events_consumed: Counter
    events_invalid: Counter
    events_late: Counter
    flush_seconds: Histogram
    flushed_events: Counter
    flush_failures: Counter
    archive_compaction_failures: Counter
    kubernetes_watch_errors: Counter
    offset_conflicts: Counter
    consumer_recycles: Counter
    consumer_lag: Gauge
    labels: Counter
    late_labels: Counter
    predictions_unlabeled: Counter
    healthy: Gauge
    drift_reports: Counter
    drifted_share: Gauge
    dataset_drift: Gauge
    evaluated_window_end: Gauge
    feature_drift_score: Gauge
    feature_drifted: Gauge
    evaluation_failures: Counter
    windows_unjudged: Counter
    performance_reports: Counter
    concept_drift_alarms: Counter
    label_coverage: Gauge
    performance_ratio: Gauge
    performance_error: Gauge
    retrain_runs: Counter
    retrain_active: Gauge
    rollout_phase: Gauge
    rollout_canary_percent: Gauge
    rollout_analyses: Counter
    alerts_sent: Counter
    alerts_failed: Counter
    alerts_dead: Counter
    alert_outbox: Gauge

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.versions = VersionSeries()
        self.http = http_metrics(self.registry)
        self._feature_methods: dict[tuple[str, str], str] = {}
        declare(self, SERVICE, self.registry)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def feature_drift(self, model: str, features: Sequence[FeatureDrift]) -> None:
        """Each feature's score and flag in a new drift report. A feature judged by another
        method than before loses its old series, and one without enough data to judge
        loses its series altogether: a stale verdict would read as current."""
        for f in features:
            key = (model, f.name)
            judged = f.method is not None and f.score is not None and f.drifted is not None
            method = str(f.method) if judged else None
            old = self._feature_methods.pop(key, None)
            if old is not None and old != method:
                self.feature_drift_score.remove(model, f.name, old)
                self.feature_drifted.remove(model, f.name, old)
            if method is None or f.score is None:
                continue
            self._feature_methods[key] = method
            self.feature_drift_score.labels(model, f.name, method).set(f.score)
            self.feature_drifted.labels(model, f.name, method).set(1 if f.drifted else 0)

    def performance(self, model: str, version: str, values: PerformanceMetrics) -> None:
        """The metrics of a new performance report; one it leaves undefined (a window
        without labels) loses its series: the last defined value would read as current."""
        for family, names in ((self.performance_ratio, _RATIOS), (self.performance_error, _ERRORS)):
            for name in names:
                value = getattr(values, name)
                if value is None:
                    family.remove(model, version, name)
                else:
                    self.versions.labels(family, model, version, name).set(value)


class HttpMetrics:
    """Requests the API served, by route template, method and status (:data:`HTTP`)."""

    requests: Counter
    duration: Histogram

    def __init__(self, registry: CollectorRegistry) -> None:
        declare(self, HTTP, registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route, method).observe(seconds)


_HTTP: weakref.WeakKeyDictionary[CollectorRegistry, HttpMetrics] = weakref.WeakKeyDictionary()
_HTTP_LOCK = threading.Lock()


def http_metrics(registry: CollectorRegistry) -> HttpMetrics:
    """The registry's HTTP metrics, created on first use: the service and every app built
    on one registry (tests build several) share them, as a registry takes a name once."""
    with _HTTP_LOCK:
        found = _HTTP.get(registry)
        if found is None:
            found = _HTTP[registry] = HttpMetrics(registry)
        return found


class SchedulerMetrics:
    """Per scheduler job: last success, duration, failures and skipped runs; and whether
    this replica is the leader (:data:`SCHEDULER`). Registered on the service's registry
    by ``service.scheduler`` (``SchedulerMetrics(metrics.registry)``)."""

    last_success: Gauge
    duration: Histogram
    failures: Counter
    skipped: Counter
    leader: Gauge

    def __init__(self, registry: CollectorRegistry) -> None:
        declare(self, SCHEDULER, registry)
