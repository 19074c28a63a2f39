"""Every Prometheus metric of the service (the adapters that feed them from the
ingestion loop, the alert worker and the run driver are in :mod:`service.metric_feeds`).

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
    """One registry per service instance, so tests can run several side by side."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.versions = VersionSeries()
        self.http = http_metrics(self.registry)
        self._feature_methods: dict[tuple[str, str], str] = {}
        r = self.registry
        self.events_consumed = Counter(
            "driftwatch_events_consumed_total",
            "Valid prediction events processed",
            ["model"],
            registry=r,
        )
        self.events_invalid = Counter(
            "driftwatch_events_invalid_total",
            "Events sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.events_late = Counter(
            "driftwatch_events_late_total",
            "Events whose window had closed (counted, not aggregated)",
            ["model"],
            registry=r,
        )
        self.flush_seconds = Histogram(
            "driftwatch_flush_duration_seconds",
            "Time to make one flush durable (dead letters and SQL transaction)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.flushed_events = Counter(
            "driftwatch_flushed_events_total", "Events made durable in SQL", registry=r
        )
        self.flush_failures = Counter(
            "driftwatch_flush_failures_total",
            "Failed flush attempts (retried)",
            ["error"],
            registry=r,
        )
        self.offset_conflicts = Counter(
            "driftwatch_offset_conflicts_total",
            "Partitions whose stored offset moved under this consumer",
            registry=r,
        )
        self.consumer_lag = Gauge(
            "driftwatch_consumer_lag_messages",
            "Messages behind the partition's high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.labels = Counter(
            "driftwatch_labels_total",
            "Label events by what became of them: joined, duplicate, early (parked before "
            "their prediction, counted again when resolved), orphaned, unknown_model, ignored",
            ["model", "outcome"],
            registry=r,
        )
        self.predictions_unlabeled = Counter(
            "driftwatch_predictions_unlabeled_total",
            "Predictions whose join TTL ran out without a label",
            ["model"],
            registry=r,
        )
        self.healthy = Gauge(
            "driftwatch_healthy", "1 while the service can make progress, 0 otherwise", registry=r
        )

        self.drift_reports = Counter(
            "driftwatch_drift_reports_total",
            "Drift reports written, by model and dataset-drift verdict",
            ["model", "dataset_drift"],
            registry=r,
        )
        self.drifted_share = Gauge(
            "driftwatch_drifted_feature_share_ratio",
            "Share of drifted features in the newest evaluated window",
            ["model", "model_version"],
            registry=r,
        )
        self.dataset_drift = Gauge(
            "driftwatch_dataset_drift",
            "1 when the newest evaluated window drifted (confirmed), 0 otherwise",
            ["model", "model_version"],
            registry=r,
        )
        self.evaluated_window_end = Gauge(
            "driftwatch_evaluated_window_end_seconds",
            "End (epoch seconds) of the newest window with a drift report",
            ["model"],
            registry=r,
        )
        self.feature_drift_score = Gauge(
            "driftwatch_feature_drift_score",
            "Test statistic or distance of each feature in the newest drift report (its unit "
            "is the method's)",
            ["model", "feature", "method"],
            registry=r,
        )
        self.feature_drifted = Gauge(
            "driftwatch_feature_drift_detected",
            "1 when the feature drifted in the newest drift report, 0 otherwise",
            ["model", "feature", "method"],
            registry=r,
        )
        self.evaluation_failures = Counter(
            "driftwatch_evaluation_failures_total",
            "Scheduler ticks of window evaluation or report rendering that failed",
            ["job"],
            registry=r,
        )

        self.performance_reports = Counter(
            "driftwatch_performance_reports_total",
            "Performance reports written, by model and degradation verdict (true, false, unknown)",
            ["model", "degraded"],
            registry=r,
        )
        self.concept_drift_alarms = Counter(
            "driftwatch_concept_drift_alarms_total",
            "Concept-drift alarms of the streaming detectors on the joined error stream",
            ["model", "model_version", "detector"],
            registry=r,
        )
        self.label_coverage = Gauge(
            "driftwatch_label_coverage_ratio",
            "Labelled share of the predictions of the newest reported window",
            ["model", "model_version"],
            registry=r,
        )
        self.performance_ratio = Gauge(
            "driftwatch_model_performance_ratio",
            "Unitless performance metrics of the newest performance report: accuracy, "
            "precision, recall, f1, roc_auc (classification) or mape (regression)",
            ["model", "model_version", "metric"],
            registry=r,
        )
        self.performance_error = Gauge(
            "driftwatch_model_error_label_units",
            "Regression errors of the newest performance report (rmse, mae, mean_error), "
            "in the units of the model's label",
            ["model", "model_version", "metric"],
            registry=r,
        )

        self.retrain_runs = Counter(
            "driftwatch_retrain_runs_total",
            "Retraining runs this replica took to a final phase, by trigger and outcome "
            "(accepted, rejected, failed, cancelled)",
            ["model", "trigger", "outcome"],
            registry=r,
        )
        self.retrain_active = Gauge(
            "driftwatch_retrain_active_runs",
            "Retraining runs not yet finished, as of the newest retraining tick",
            ["model"],
            registry=r,
        )

        self.alerts_sent = Counter(
            "driftwatch_alerts_sent_total",
            "Alert deliveries a channel accepted",
            ["channel"],
            registry=r,
        )
        self.alerts_failed = Counter(
            "driftwatch_alerts_failed_total",
            "Failed alert delivery attempts, by whether they are retried",
            ["channel", "retriable"],
            registry=r,
        )
        self.alerts_dead = Counter(
            "driftwatch_alerts_dead_total",
            "Alert deliveries given up (out of attempts or refused with a 4xx)",
            ["channel"],
            registry=r,
        )
        self.alert_outbox = Gauge(
            "driftwatch_alert_outbox_deliveries",
            "Alert deliveries in the outbox by channel and status (pending, delivered, dead, "
            "skipped)",
            ["channel", "status"],
            registry=r,
        )

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
    """Requests the API served, by route template, method and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "driftwatch_http_requests_total",
            "HTTP requests the API answered, by route template (unmatched: no route), method "
            "and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "driftwatch_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )

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


# -- scheduler and leader election ----------------------------------------------------
# Kept together at the end of the module: the scheduler's own metrics, registered on the
# service's registry by ``service.scheduler`` (``SchedulerMetrics(metrics.registry)``).

_JOB_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class SchedulerMetrics:
    """Per scheduler job: last success, duration, failures and skipped runs; and whether
    this replica is the leader."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.last_success = Gauge(
            "driftwatch_scheduler_job_last_success_timestamp_seconds",
            "When (epoch seconds) the job last finished without an error",
            ["job"],
            registry=r,
        )
        self.duration = Histogram(
            "driftwatch_scheduler_job_duration_seconds",
            "Time one run of the job took, failed or not",
            ["job"],
            buckets=_JOB_SECONDS,
            registry=r,
        )
        self.failures = Counter(
            "driftwatch_scheduler_job_failures_total",
            "Runs of the job that raised (retried at its next run)",
            ["job"],
            registry=r,
        )
        self.skipped = Counter(
            "driftwatch_scheduler_job_skipped_total",
            "Runs of the job not made: not_leader (another replica acts), misfire (too late "
            "to run), max_instances (the previous run was still going)",
            ["job", "reason"],
            registry=r,
        )
        self.leader = Gauge(
            "driftwatch_leader",
            "1 while this replica holds the leadership of its backend, 0 otherwise",
            ["backend"],
            registry=r,
        )
