"""Every Prometheus metric of the service, and the adapters that feed them."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    """One registry per service instance, so tests can run several side by side."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
            "driftwatch_drifted_feature_share",
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


class IngestMetrics:
    """:class:`consumers.stats.IngestStats` on top of :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def consumed(self, model: str, n: int) -> None:
        self.m.events_consumed.labels(model).inc(n)

    def invalid(self, reason: str) -> None:
        self.m.events_invalid.labels(reason).inc()

    def late(self, model: str, n: int) -> None:
        self.m.events_late.labels(model).inc(n)

    def flushed(self, seconds: float, events: int) -> None:
        self.m.flush_seconds.observe(seconds)
        self.m.flushed_events.inc(events)

    def flush_failed(self, reason: str) -> None:
        self.m.flush_failures.labels(reason).inc()

    def offset_conflicts(self, n: int) -> None:
        self.m.offset_conflicts.inc(n)

    def lag(self, topic: str, partition: int, lag: int) -> None:
        self.m.consumer_lag.labels(topic, str(partition)).set(lag)

    def healthy(self, ok: bool) -> None:
        self.m.healthy.set(1 if ok else 0)

    def labels(self, model: str, outcome: str, n: int) -> None:
        self.m.labels.labels(model, outcome).inc(n)

    def unlabeled(self, model: str, n: int) -> None:
        self.m.predictions_unlabeled.labels(model).inc(n)

    def alarms(self, model: str, model_version: str, detector: str, n: int) -> None:
        self.m.concept_drift_alarms.labels(model, model_version, detector).inc(n)


class AlertMetrics:
    """:class:`service.alerts.worker.DeliveryObserver` on top of :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def sent(self, channel: str) -> None:
        self.m.alerts_sent.labels(channel).inc()

    def failed(self, channel: str, retriable: bool) -> None:
        self.m.alerts_failed.labels(channel, str(retriable).lower()).inc()

    def dead(self, channel: str) -> None:
        self.m.alerts_dead.labels(channel).inc()

    def outbox(self, counts: Mapping[tuple[str, str], int]) -> None:
        for (channel, status), n in counts.items():
            self.m.alert_outbox.labels(channel, status).set(n)


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
