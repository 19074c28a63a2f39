"""The scheduler's job wrapper: leader-only jobs skip on followers, failures are counted
and retried, and every run leaves its metrics; APScheduler's own skips are counted too."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from db.errors import StoreUnavailable
from drift.schema import ModelSpec
from service.leader import AlwaysLeader
from service.metrics import Metrics, SchedulerMetrics
from service.scheduler import COMMON, JobRunner, build_scheduler, leader_gauge, watch
from tests.harness.k8s.cluster import until
from tests.unit.service.test_config import load, mutated


class Switch:
    """An elector the test flips."""

    backend = "switch"

    def __init__(self, leading: bool) -> None:
        self.leading = leading

    def is_leader(self) -> bool:
        return self.leading

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def runner(elector: Switch | AlwaysLeader) -> tuple[JobRunner, CollectorRegistry, list[str]]:
    registry = CollectorRegistry()
    failed: list[str] = []
    ticks = iter([10.0, 10.5, 20.0, 21.25, 30.0, 30.5])
    job_runner = JobRunner(
        elector, SchedulerMetrics(registry), failed.append, clock=lambda: 1234.0,
        timer=lambda: next(ticks),
    )  # fmt: skip
    return job_runner, registry, failed


def test_a_leader_only_job_is_skipped_on_a_follower_and_runs_on_the_leader() -> None:
    elector = Switch(leading=False)
    job_runner, registry, _ = runner(elector)
    calls: list[str] = []
    assert job_runner.run("evaluate", lambda: calls.append("evaluate")) is False
    assert job_runner.run("profiles", lambda: calls.append("profiles"), leader_only=False)
    assert calls == ["profiles"]
    skipped = "driftwatch_scheduler_job_skipped_total"
    assert sample(registry, skipped, job="evaluate", reason="not_leader") == 1.0
    assert sample(registry, skipped, job="profiles", reason="not_leader") is None

    elector.leading = True
    assert job_runner.run("evaluate", lambda: calls.append("evaluate"))
    assert calls == ["profiles", "evaluate"]
    assert sample(registry, skipped, job="evaluate", reason="not_leader") == 1.0


def test_a_run_records_its_success_and_duration() -> None:
    job_runner, registry, failed = runner(AlwaysLeader())
    assert job_runner.run("retention", lambda: None)
    assert job_runner.run("retention", lambda: None)
    last = "driftwatch_scheduler_job_last_success_timestamp_seconds"
    assert sample(registry, last, job="retention") == 1234.0
    duration = "driftwatch_scheduler_job_duration_seconds"
    assert sample(registry, f"{duration}_count", job="retention") == 2.0
    assert sample(registry, f"{duration}_sum", job="retention") == 0.5 + 1.25
    assert failed == []


def test_a_failed_run_is_counted_logged_and_the_next_run_still_happens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_runner, registry, failed = runner(AlwaysLeader())

    def outage() -> None:
        raise StoreUnavailable("connection refused")

    def bug() -> None:
        raise KeyError("nope")

    with caplog.at_level(logging.WARNING, logger="service.scheduler"):
        assert job_runner.run("alerts", outage) is False
        assert job_runner.run("alerts", bug) is False
    expected, unexpected = caplog.records
    assert expected.getMessage() == (
        "job alerts failed, retrying at its next run: connection refused"
    )
    assert expected.exc_info is None  # an outage is operations, not a bug: no traceback
    assert unexpected.exc_info is not None and unexpected.exc_info[0] is KeyError
    assert sample(registry, "driftwatch_scheduler_job_failures_total", job="alerts") == 2.0
    assert failed == ["alerts", "alerts"]
    last = "driftwatch_scheduler_job_last_success_timestamp_seconds"
    assert sample(registry, last, job="alerts") is None
    duration = "driftwatch_scheduler_job_duration_seconds_count"
    assert sample(registry, duration, job="alerts") == 2.0  # failed runs are timed too

    assert job_runner.run("alerts", lambda: None)
    assert sample(registry, last, job="alerts") == 1234.0


def test_the_leader_gauge_follows_the_elector() -> None:
    registry = CollectorRegistry()
    elector = Switch(leading=False)
    leader_gauge(SchedulerMetrics(registry), elector)
    assert sample(registry, "driftwatch_leader", backend="switch") == 0.0
    elector.leading = True
    assert sample(registry, "driftwatch_leader", backend="switch") == 1.0


def test_runs_refused_while_the_previous_is_going_and_missed_runs_are_counted() -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    job_runner, registry, _ = runner(AlwaysLeader())
    scheduler = BackgroundScheduler(timezone="UTC")
    watch(scheduler, job_runner)
    release = threading.Event()
    scheduler.add_job(release.wait, "interval", seconds=0.05, id="evaluate", **COMMON)
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    scheduler.add_job(lambda: None, "date", run_date=long_ago, id="render", misfire_grace_time=1)
    skipped = "driftwatch_scheduler_job_skipped_total"
    scheduler.start()
    try:
        until(lambda: sample(registry, skipped, job="evaluate", reason="max_instances"))
        until(lambda: sample(registry, skipped, job="render", reason="misfire"))
    finally:
        release.set()
        scheduler.shutdown(wait=True)


def test_a_run_outlasting_its_interval_is_logged_once_not_at_every_refused_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from apscheduler.schedulers.background import BackgroundScheduler

    job_runner, registry, _ = runner(AlwaysLeader())
    scheduler = BackgroundScheduler(timezone="UTC")
    watch(scheduler, job_runner)
    release, ended = threading.Event(), threading.Event()

    def slow() -> None:
        release.wait()
        ended.set()

    scheduler.add_job(slow, "interval", seconds=0.05, id="evaluate", **COMMON)
    skipped = "driftwatch_scheduler_job_skipped_total"
    caplog.set_level(logging.INFO)
    scheduler.start()
    try:
        until(lambda: (sample(registry, skipped, job="evaluate", reason="max_instances") or 0) >= 3)
        scheduler.pause_job("evaluate")  # no run is refused after this: the counts stay put
        release.set()
        until(ended.is_set)
        until(lambda: any("skipped meanwhile" in r.getMessage() for r in caplog.records))
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    refused = [r for r in caplog.records if "maximum number of running" in r.getMessage()]
    assert refused == []  # APScheduler's line per refused run
    # The scheduler's and APScheduler's lines only: client threads other tests of this
    # worker left behind (a Kubernetes watch still retrying) may log warnings too.
    ours = [r for r in caplog.records if r.name.startswith(("service.", "apscheduler"))]
    warned = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert warned == [
        "job evaluate is still running at its next run time; its runs are skipped until it ends"
    ]
    (ended_line,) = [
        r.getMessage() for r in caplog.records if "skipped meanwhile" in r.getMessage()
    ]
    count = sample(registry, skipped, job="evaluate", reason="max_instances")
    assert re.fullmatch(
        rf"job evaluate ended \d+\.\d s after its start time; {count:.0f} run\(s\) were "
        "skipped meanwhile",
        ended_line,
    )


class Rebinned:
    def __init__(self) -> None:
        self.specs: list[Mapping[str, ModelSpec]] = []

    def replace_models(self, specs: Mapping[str, ModelSpec]) -> None:
        self.specs.append(specs)


def test_driftwatch_run_schedules_every_job_and_followers_only_keep_their_bins(
    tmp_path: Path, sqlite_url: str
) -> None:
    from consumers.progress import ConsumerProgress
    from db.session import make_engine, make_session_factory
    from service.metric_feeds import ReportMetrics
    from service.wiring.jobs import scheduled_jobs
    from service.wiring.monitoring import build_evaluator
    from service.wiring.retraining import build_retraining
    from service.wiring.watches import build_tally, build_watches

    raw = mutated("database.url", sqlite_url)
    raw["archive"] = {"uri": str(tmp_path / "archive")}
    raw["retention"] = {"interval": "30m"}
    cfg = load(tmp_path, raw)
    engine = make_engine(sqlite_url)
    sessions = make_session_factory(engine)
    metrics = Metrics()
    elector = Switch(leading=False)
    closers: list[Callable[[], None]] = []
    evaluator = build_evaluator(cfg, sessions, ReportMetrics(metrics))
    watches = build_watches(cfg, sessions, ConsumerProgress, build_tally(cfg))
    scheduled = scheduled_jobs(
        cfg,
        sessions,
        metrics,
        closers,
        evaluator=evaluator,
        loop=Rebinned(),
        watches=watches,
        retraining=build_retraining(cfg, sessions),
    )
    scheduler = build_scheduler(scheduled, metrics, elector)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {
            "evaluate",
            "retrain",
            "archive",
            "retention",
            "render",
            "consumer-stalls",
            "dead-letter-rate",
        }
        assert jobs["retention"].trigger.interval == timedelta(minutes=30)
        for job in jobs.values():
            assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, None)

        r = metrics.registry
        for name in ("evaluate", "consumer-stalls", "dead-letter-rate"):
            jobs[name].func()
        skipped = "driftwatch_scheduler_job_skipped_total"
        assert sample(r, skipped, job="evaluate", reason="not_leader") == 1.0
        assert sample(r, skipped, job="performance", reason="not_leader") == 1.0
        last = "driftwatch_scheduler_job_last_success_timestamp_seconds"
        for name in ("profiles", "consumer-stalls", "dead-letter-rate"):
            assert sample(r, last, job=name) is not None, name  # on every replica
        assert sample(r, "driftwatch_leader", backend="switch") == 0.0

        elector.leading = True
        for name in ("evaluate", "retention", "archive", "retrain"):
            jobs[name].func()
            assert sample(r, last, job=name) is not None, name
        assert sample(r, "driftwatch_scheduler_job_failures_total", job="evaluate") is None
        assert sample(r, "driftwatch_leader", backend="switch") == 1.0
    finally:
        for close in closers:
            close()
        engine.dispose()
