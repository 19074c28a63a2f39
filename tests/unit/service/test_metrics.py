"""Every metric family of issue 12 is exported and moves when its event happens.

Each test drives the real code path (window evaluation, performance reports,
the run driver, the outbox worker against a local receiver, the API over a
socket) with a :class:`Metrics` on a registry of its own, and reads the
samples back as Prometheus would scrape them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_type_hints

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session, sessionmaker

from db.registry import RegistryRepository, Stage
from db.reports import DriftReportRepository
from db.session import transaction
from drift.performance import PerformanceMetrics, Task
from drift.report import FeatureDrift
from drift.schema import FeatureKind
from drift.stats import Method
from retrain.lifecycle import Loop, Phase
from retrain.policy import TriggerPolicy
from retrain.runs import RunDriver
from retrain.settings import LoopSettings
from service.alerts import build_worker
from service.alerts.conditions import DATA_DRIFT, condition
from service.config.alerts import AlertsConfig
from service.metric_feeds import AlertMetrics, IngestMetrics, ReportMetrics, RetrainMetrics
from service.metrics import (
    HTTP,
    SCHEDULER,
    SERVICE,
    HttpMetrics,
    Metrics,
    SchedulerMetrics,
    Spec,
    VersionSeries,
    http_metrics,
)
from service.monitoring.evaluation import EvaluationSettings, Judging, WindowEvaluator
from service.monitoring.performance import PerformanceEvaluator, PerformanceJudging, ReferenceValue
from tests.harness.receivers import receiver
from tests.unit.retrain.support import (
    T0 as RUN_T0,
)
from tests.unit.retrain.support import (
    Clock,
    ParquetExporter,
    ScriptedExecutor,
    model_settings,
)
from tests.unit.service.api.conftest import READ, serving
from tests.unit.service.test_evaluation import SPEC, T0, TOPIC, WINDOW, aligned, build_profile
from tests.unit.service.test_evaluation import Clock as EpochClock
from tests.unit.service.test_evaluation import ingest as ingest_windows
from tests.unit.service.test_performance import SETTINGS as PERFORMANCE_SETTINGS
from tests.unit.service.test_performance import SPEC as LABEL_SPEC
from tests.unit.service.test_performance import T as PERFORMANCE_T
from tests.unit.service.test_performance import advance, fill


def exported(registry: CollectorRegistry) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Each family in the scraped text, with the label sets of its samples."""
    text = generate_latest(registry).decode()
    return {
        family.name: {tuple(sorted(s.labels.items())) for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def test_a_drift_report_sets_each_features_score_and_flag_and_the_drifted_share(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    build_profile(sessions, tmp_path)
    spec = replace(aligned(sessions), sample_size=500)
    # Window 1 is shifted; window 2 stays open, so windows 0 and 1 are judged, in order.
    ingest_windows(sessions, spec, windows=3, drift_at=1 * WINDOW)
    metrics = Metrics(CollectorRegistry())
    value = metrics.registry.get_sample_value
    share = {"model": "fraud", "model_version": "v1"}
    assert value("driftwatch_drifted_feature_share_ratio", share) is None
    evaluator = WindowEvaluator(
        sessions,
        {"fraud": Judging(spec=SPEC)},
        EvaluationSettings(topic=TOPIC, consumer_group="g", idle_partition_timeout=60),
        observer=ReportMetrics(metrics),
        clock=EpochClock(T0),
    )
    written = evaluator.tick()
    assert len(written) == 2
    with sessions() as s:
        newest = DriftReportRepository(s).get(max(written))
    assert newest is not None and newest.top_drifted()
    assert value("driftwatch_drifted_feature_share_ratio", share) == newest.summary.drifted_share
    assert value("driftwatch_dataset_drift", share) == 1
    for f in newest.features:
        labels = {"model": "fraud", "feature": f.feature, "method": str(f.method)}
        assert value("driftwatch_feature_drift_score", labels) == f.score
        assert value("driftwatch_feature_drift_detected", labels) == (1 if f.drifted else 0)
    families = exported(metrics.registry)
    assert len(families["driftwatch_feature_drift_score"]) == len(SPEC.features)
    assert "driftwatch_drifted_feature_share" not in families


def test_a_feature_judged_otherwise_or_not_at_all_loses_its_old_series() -> None:
    metrics = Metrics(CollectorRegistry())
    value = metrics.registry.get_sample_value

    def result(method: Method | None, score: float | None, drifted: bool | None) -> FeatureDrift:
        return FeatureDrift(
            "amount", FeatureKind.NUMERICAL, method, score, None, 0.1, drifted, 50, 50, 0.0, 0.0
        )

    ks = {"model": "fraud", "feature": "amount", "method": str(Method.KS)}
    wasserstein = {**ks, "method": str(Method.WASSERSTEIN)}
    metrics.feature_drift("fraud", [result(Method.KS, 0.4, True)])
    assert (
        value("driftwatch_feature_drift_score", ks),
        value("driftwatch_feature_drift_detected", ks),
    ) == (0.4, 1)
    metrics.feature_drift("fraud", [result(Method.WASSERSTEIN, 0.05, False)])
    assert value("driftwatch_feature_drift_score", ks) is None
    assert value("driftwatch_feature_drift_detected", wasserstein) == 0
    metrics.feature_drift("fraud", [result(None, None, None)])  # too few rows to judge
    assert "driftwatch_feature_drift_score" not in {
        name for name, series in exported(metrics.registry).items() if series
    }


def test_a_performance_report_sets_the_versions_accuracy_and_coverage(
    sessions: sessionmaker[Session],
) -> None:
    fill(sessions, correct=150, wrong=50, unlabeled=20)
    advance(sessions, predictions=PERFORMANCE_T + 700, labels=PERFORMANCE_T + 700)
    metrics = Metrics(CollectorRegistry())
    value = metrics.registry.get_sample_value
    accuracy = {"model": "fraud", "model_version": "v1", "metric": "accuracy"}
    assert value("driftwatch_model_performance_ratio", accuracy) is None
    judging = PerformanceJudging(LABEL_SPEC, 60, 10, ReferenceValue(accuracy=0.9), min_labeled=100)
    evaluator = PerformanceEvaluator(
        sessions,
        {"fraud": judging},
        PERFORMANCE_SETTINGS,
        ReportMetrics(metrics),
        clock=lambda: PERFORMANCE_T + 10.0,
    )
    assert len(evaluator.tick()) == 1
    assert value("driftwatch_model_performance_ratio", accuracy) == 0.75
    version = {"model": "fraud", "model_version": "v1"}
    assert value("driftwatch_label_coverage_ratio", version) == 200 / 220
    assert (
        value("driftwatch_performance_reports_total", {"model": "fraud", "degraded": "true"}) == 1
    )


def test_regression_errors_are_exported_in_the_labels_units() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.performance(
        "price", "v3", PerformanceMetrics(Task.REGRESSION, 10, rmse=2.5, mae=2.0, mape=0.1)
    )
    value = metrics.registry.get_sample_value
    labels = {"model": "price", "model_version": "v3"}
    assert value("driftwatch_model_error_label_units", {**labels, "metric": "rmse"}) == 2.5
    assert value("driftwatch_model_error_label_units", {**labels, "metric": "mae"}) == 2.0
    assert value("driftwatch_model_performance_ratio", {**labels, "metric": "mape"}) == 0.1
    assert value("driftwatch_model_performance_ratio", {**labels, "metric": "accuracy"}) is None


def test_only_the_newest_versions_of_a_model_keep_their_series() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.versions = VersionSeries(keep=2)
    value = metrics.registry.get_sample_value
    for version in ("v1", "v2", "v1", "v3"):  # v1 is seen again, so v2 is the oldest
        metrics.versions.labels(metrics.drifted_share, "fraud", version).set(0.5)
        metrics.versions.labels(metrics.concept_drift_alarms, "fraud", version, "ph").inc()
    metrics.versions.labels(metrics.drifted_share, "churn", "v9").set(0.1)
    share = "driftwatch_drifted_feature_share_ratio"
    assert value(share, {"model": "fraud", "model_version": "v2"}) is None
    alarms = {"model": "fraud", "model_version": "v2", "detector": "ph"}
    assert value("driftwatch_concept_drift_alarms_total", alarms) is None
    assert value(share, {"model": "fraud", "model_version": "v1"}) == 0.5
    assert value(share, {"model": "fraud", "model_version": "v3"}) == 0.5
    assert value(share, {"model": "churn", "model_version": "v9"}) == 0.1


def test_events_of_unconfigured_models_are_counted_as_unknown() -> None:
    metrics = Metrics(CollectorRegistry())
    stats = IngestMetrics(metrics, ["fraud"])
    stats.consumed("fraud", 3)
    stats.labels("made-up-by-a-producer", "unknown_model", 1)
    stats.labels("another-one", "unknown_model", 1)
    value = metrics.registry.get_sample_value
    assert value("driftwatch_events_consumed_total", {"model": "fraud"}) == 3
    labels = {"model": "unknown", "outcome": "unknown_model"}
    assert value("driftwatch_labels_total", labels) == 2
    assert exported(metrics.registry)["driftwatch_labels"] == {tuple(sorted(labels.items()))}


def test_runs_are_counted_once_by_trigger_and_outcome_and_active_ones_gauged(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    clock, executor = Clock(), ScriptedExecutor()
    models = {"fraud": model_settings()}
    policy = TriggerPolicy(sessions, models, clock)
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", "file:///models/v1.skops", "a" * 64, Stage.PRODUCTION, RUN_T0
        )
    loop = Loop(
        executor, models, LoopSettings(tmp_path / "runs", "file:///a"), ParquetExporter(), clock
    )
    metrics = Metrics(CollectorRegistry())
    value = metrics.registry.get_sample_value
    driver = RunDriver(sessions, loop, observer=RetrainMetrics(metrics))
    failed = {"model": "fraud", "trigger": "manual", "outcome": "failed"}

    first = policy.request("fraud", "operator asked").run_id
    assert first is not None
    assert driver.tick() == {first: Phase.PENDING}  # exports; the next tick starts training
    assert driver.tick() == {first: Phase.TRAINING}
    assert value("driftwatch_retrain_active_runs", {"model": "fraud"}) == 1
    assert value("driftwatch_retrain_runs_total", failed) is None
    executor.fail(f"driftwatch-fraud-{first}-train", "OOMKilled")
    assert driver.tick() == {first: Phase.FAILED}
    assert value("driftwatch_retrain_runs_total", failed) == 1
    assert value("driftwatch_retrain_active_runs", {"model": "fraud"}) == 0
    # A restarted driver, or this one again, finds the run final and does not count it.
    restarted = RunDriver(sessions, loop, observer=RetrainMetrics(metrics))
    assert restarted.step(first) == Phase.FAILED and restarted.tick() == {}
    assert value("driftwatch_retrain_runs_total", failed) == 1

    second = policy.request("fraud", "operator asked again").run_id
    assert second is not None
    driver.tick()
    assert driver.cancel(second, "changed my mind") == Phase.CANCELLED
    assert driver.cancel(second, "twice") == Phase.CANCELLED
    cancelled = {**failed, "outcome": "cancelled"}
    assert value("driftwatch_retrain_runs_total", cancelled) == 1
    assert value("driftwatch_retrain_runs_total", failed) == 1


def test_the_outbox_gauge_follows_a_delivery_from_pending_to_delivered(
    sessions: sessionmaker[Session],
) -> None:
    now = [datetime(2026, 11, 27, 12, tzinfo=UTC)]
    metrics = Metrics(CollectorRegistry())
    value = metrics.registry.get_sample_value
    with transaction(sessions) as s:
        condition(s, "fraud", DATA_DRIFT, True, "report-1", "drift in fraud/v1", now[0], {})
    with receiver("webhook", secret="k") as rx:
        rx.fail_next(1, 503)
        cfg = AlertsConfig.model_validate(
            {
                "channels": {"hook": {"type": "webhook", "url": rx.url, "secret": "k"}},
                "routes": [{"channels": ["hook"]}],
                "backoff": "10s",
            }
        )
        worker = build_worker(cfg, sessions, AlertMetrics(metrics), lambda: now[0])
        try:
            worker.tick()
            pending = {"channel": "hook", "status": "pending"}
            delivered = {**pending, "status": "delivered"}
            assert value("driftwatch_alert_outbox_deliveries", pending) == 1
            assert value("driftwatch_alert_outbox_deliveries", delivered) == 0
            failed = {"channel": "hook", "retriable": "true"}
            assert value("driftwatch_alerts_failed_total", failed) == 1
            assert value("driftwatch_alerts_sent_total", {"channel": "hook"}) is None
            now[0] += timedelta(seconds=11)
            worker.tick()
        finally:
            worker.close()
    assert len(rx.accepted) == 1
    assert value("driftwatch_alerts_sent_total", {"channel": "hook"}) == 1
    assert value("driftwatch_alert_outbox_deliveries", pending) == 0
    assert value("driftwatch_alert_outbox_deliveries", delivered) == 1


def test_http_requests_are_counted_by_route_template_and_status(
    sqlite_url: str, tmp_path: Path
) -> None:
    with serving(sqlite_url, tmp_path) as api:
        value = api.deps.registry.get_sample_value
        run = {"route": "/v1/runs/{run_id}", "method": "GET", "status": "404"}
        assert value("driftwatch_http_requests_total", run) is None
        with api.client(READ) as client:
            assert client.get("/v1/runs/12345").status_code == 404
            assert client.get("/v1/runs/12345").status_code == 404
            assert client.get("/v1/runs").status_code == 200
            assert client.get("/no/such/page/12345").status_code == 404
            assert client.request("PROPFIND", "/v1/runs").status_code == 405
            # Refused by the body limit before routing, still counted under its route.
            big = client.post("/v1/models/fraud/retrain", content=b"x" * 4096)
            assert big.status_code == 413
            scraped = client.get("/metrics")
        assert value("driftwatch_http_requests_total", run) == 2
        runs = {"route": "/v1/runs", "method": "GET", "status": "200"}
        assert value("driftwatch_http_requests_total", runs) == 1
        unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
        assert value("driftwatch_http_requests_total", unmatched) == 1
        webdav = {"route": "/v1/runs", "method": "other", "status": "405"}
        assert value("driftwatch_http_requests_total", webdav) == 1
        refused = {"route": "/v1/models/{model}/retrain", "method": "POST", "status": "413"}
        assert value("driftwatch_http_requests_total", refused) == 1
        timed = {"route": "/v1/runs/{run_id}", "method": "GET"}
        assert value("driftwatch_http_request_duration_seconds_count", timed) == 2
        # The scrape shows the requests before it; no raw path ever becomes a label.
        assert 'route="/v1/runs/{run_id}"' in scraped.text
        assert "12345" not in scraped.text
        # One registry, one set of HTTP metrics, however many apps are built on it.
        assert http_metrics(api.deps.registry) is http_metrics(api.deps.registry)


# What dashboards, alert rules and the README's table query: a renamed family or label
# silently empties a panel, so any change here must be deliberate.
PINNED = {
    "driftwatch_alert_outbox_deliveries": ("channel", "status"),
    "driftwatch_alerts_dead_total": ("channel",),
    "driftwatch_alerts_failed_total": ("channel", "retriable"),
    "driftwatch_alerts_sent_total": ("channel",),
    "driftwatch_archive_compaction_failures_total": (),
    "driftwatch_concept_drift_alarms_total": ("detector", "model", "model_version"),
    "driftwatch_consumer_lag_messages": ("partition", "topic"),
    "driftwatch_consumer_recycles_total": (),
    "driftwatch_dataset_drift": ("model", "model_version"),
    "driftwatch_drift_reports_total": ("dataset_drift", "model"),
    "driftwatch_drifted_feature_share_ratio": ("model", "model_version"),
    "driftwatch_evaluated_window_end_seconds": ("model",),
    "driftwatch_evaluation_failures_total": ("job",),
    "driftwatch_windows_unjudged_total": ("kind", "model"),
    "driftwatch_events_consumed_total": ("model",),
    "driftwatch_events_invalid_total": ("reason",),
    "driftwatch_events_late_total": ("model",),
    "driftwatch_feature_drift_detected": ("feature", "method", "model"),
    "driftwatch_feature_drift_score": ("feature", "method", "model"),
    "driftwatch_flush_duration_seconds": (),
    "driftwatch_flush_failures_total": ("error",),
    "driftwatch_flushed_events_total": (),
    "driftwatch_healthy": (),
    "driftwatch_http_request_duration_seconds": ("method", "route"),
    "driftwatch_http_requests_total": ("method", "route", "status"),
    "driftwatch_kubernetes_watch_errors_total": (),
    "driftwatch_label_coverage_ratio": ("model", "model_version"),
    "driftwatch_labels_total": ("model", "outcome"),
    "driftwatch_late_labels_total": ("model", "outcome"),
    "driftwatch_leader": ("backend",),
    "driftwatch_model_error_label_units": ("metric", "model", "model_version"),
    "driftwatch_model_performance_ratio": ("metric", "model", "model_version"),
    "driftwatch_offset_conflicts_total": (),
    "driftwatch_performance_reports_total": ("degraded", "model"),
    "driftwatch_predictions_unlabeled_total": ("model",),
    "driftwatch_retrain_active_runs": ("model",),
    "driftwatch_retrain_runs_total": ("model", "outcome", "trigger"),
    "driftwatch_rollout_analyses_total": ("check", "model", "outcome"),
    "driftwatch_rollout_canary_percent": ("model",),
    "driftwatch_rollout_phase": ("model", "phase"),
    "driftwatch_scheduler_job_duration_seconds": ("job",),
    "driftwatch_scheduler_job_failures_total": ("job",),
    "driftwatch_scheduler_job_last_success_timestamp_seconds": ("job",),
    "driftwatch_scheduler_job_skipped_total": ("job", "reason"),
}


def test_the_exported_metric_and_label_names_are_the_pinned_ones() -> None:
    metrics = Metrics(CollectorRegistry())
    tables: list[tuple[object, tuple[Spec, ...]]] = [
        (metrics, SERVICE),
        (metrics.http, HTTP),
        (SchedulerMetrics(metrics.registry), SCHEDULER),
    ]
    for holder, specs in tables:
        for spec in specs:
            if spec.labels:  # a labelled family shows its label names once it has a series
                getattr(holder, spec.attr).labels(*["x"] * len(spec.labels))
    exported = {
        family.name + ("_total" if family.type == "counter" else ""): tuple(
            sorted({label for s in family.samples for label in s.labels} - {"le"})
        )
        for family in metrics.registry.collect()
    }
    assert exported == PINNED


def test_each_family_is_an_attribute_annotated_with_its_kind() -> None:
    for holder, specs in ((Metrics, SERVICE), (HttpMetrics, HTTP), (SchedulerMetrics, SCHEDULER)):
        hints = get_type_hints(holder)
        assert {spec.attr: spec.kind for spec in specs} == {
            name: kind for name, kind in hints.items() if kind in (Counter, Gauge, Histogram)
        }
