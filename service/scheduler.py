"""The scheduler beside the consumer: periodic jobs, who runs them, and their metrics.

Every job runs through :class:`JobRunner`, which gives it what each used to repeat:
a leadership check (a leader-only job is skipped on followers, counted as
``not_leader``), error handling (a failed run is logged and retried at the next
one; nothing ends a job for good), and its metrics (last success, duration,
failures). APScheduler's own skips (a run missed past its grace time, or one
refused because the previous run is still going) are counted by
:meth:`JobRunner.on_event`.

Leader-only, because they write shared state: window and performance evaluation,
report rendering, the retraining tick, alert delivery, retention and archive
maintenance. On every replica: ingestion (not a job), keeping the consumer's
bins on the current reference profiles (``profiles``), and the watches of this
replica's own consumer (``consumer-stalls``, ``dead-letter-rate``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import StoreError
from drift.errors import DriftError
from drift.schema import ModelSpec
from retrain.errors import RetrainError
from service.alerts.errors import AlertError
from service.config import Config
from service.errors import ServiceError
from service.evaluation import WindowEvaluator
from service.leader import Elector
from service.metrics import Metrics, SchedulerMetrics
from service.watches import Watches

log = logging.getLogger(__name__)

# Failures that are part of operating (a database outage, a job that cannot be
# launched now): one line in the log. Anything else is a bug and gets its traceback.
EXPECTED: tuple[type[BaseException], ...] = (
    StoreError,
    SQLAlchemyError,
    DriftError,
    RetrainError,
    AlertError,
    ServiceError,
)
# Every job runs at most once at a time; a late run is made once, not once per missed
# period (coalesce), however late (no misfire grace limit).
COMMON: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}


class Rebinning(Protocol):
    """What follows the current reference profiles' bins: the ingestion loop."""

    def replace_models(self, specs: Mapping[str, ModelSpec]) -> None: ...


class JobRunner:
    """Runs one job: leadership check, error handling and metrics."""

    def __init__(
        self,
        elector: Elector,
        metrics: SchedulerMetrics,
        failures: Callable[[str], None] = lambda _job: None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.elector = elector
        self.metrics = metrics
        self._failures = failures
        self._clock = clock
        self._timer = timer

    def run(self, name: str, work: Callable[[], object], *, leader_only: bool = True) -> bool:
        """Run ``work`` now unless a follower must skip it; True when it succeeded."""
        if leader_only and not self.elector.is_leader():
            self.metrics.skipped.labels(name, "not_leader").inc()
            return False
        started = self._timer()
        try:
            work()
        except EXPECTED as exc:
            self._failed(name)
            log.warning("job %s failed, retrying at its next run: %s", name, exc)
            return False
        except Exception:  # a bug in one run must not end the job for good
            self._failed(name)
            log.exception("job %s failed, retrying at its next run", name)
            return False
        finally:
            self.metrics.duration.labels(name).observe(self._timer() - started)
        self.metrics.last_success.labels(name).set(self._clock())
        return True

    def job(
        self, name: str, work: Callable[[], object], *, leader_only: bool = True
    ) -> Callable[[], None]:
        """``work`` as a scheduler job under :meth:`run`."""

        def run() -> None:
            self.run(name, work, leader_only=leader_only)

        run.__name__ = name
        return run

    def on_event(self, event: Any) -> None:
        """APScheduler listener for missed runs and runs refused by ``max_instances``."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        if event.code == EVENT_JOB_MISSED:
            self.metrics.skipped.labels(event.job_id, "misfire").inc()
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.metrics.skipped.labels(event.job_id, "max_instances").inc()

    def _failed(self, name: str) -> None:
        self.metrics.failures.labels(name).inc()
        self._failures(name)


def leader_gauge(metrics: SchedulerMetrics, elector: Elector) -> None:
    """``driftwatch_leader{backend}`` reads the elector at every scrape."""
    metrics.leader.labels(elector.backend).set_function(lambda: 1.0 if elector.is_leader() else 0.0)


def watch(scheduler: Any, runner: JobRunner) -> None:
    """Count the scheduler's skipped runs in ``runner``'s metrics."""
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

    scheduler.add_listener(runner.on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)


def build_scheduler(
    cfg: Config,
    evaluator: WindowEvaluator,
    loop: Rebinning,
    sessions: sessionmaker[Session],
    metrics: Metrics,
    elector: Elector,
    closers: list[Callable[[], None]],
    watches: Watches,
) -> Any:
    """The scheduler of ``driftwatch run``, not started; ``closers`` gets what it opened."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from service.runner import build_performance_evaluator

    scheduler_metrics = SchedulerMetrics(metrics.registry)
    leader_gauge(scheduler_metrics, elector)
    # The older per-job failure counter, kept for the dashboards that read it.
    runner = JobRunner(
        elector, scheduler_metrics, lambda job: metrics.evaluation_failures.labels(job).inc()
    )
    scheduler = BackgroundScheduler(timezone="UTC")
    watch(scheduler, runner)

    current = dict(evaluator.specs())
    performance = build_performance_evaluator(cfg, sessions, metrics, evaluator.finality)

    def profiles() -> None:
        # Every replica bins its events on the current profiles, leader or not.
        specs = evaluator.refresh_profiles()
        if specs != current:
            current.clear()
            current.update(specs)
            loop.replace_models(specs)

    def evaluate() -> None:
        runner.run("profiles", profiles, leader_only=False)
        runner.run("evaluate", evaluator.tick)
        # After the drift reports: a performance report links its window's drift report.
        runner.run("performance", performance.tick)

    every = {"trigger": "interval", **COMMON}
    scheduler.add_job(evaluate, seconds=cfg.evaluation.interval, id="evaluate", **every)
    retrain = _retraining(cfg, sessions, metrics)
    scheduler.add_job(
        runner.job("retrain", retrain), seconds=cfg.retrain.tick, id="retrain", **every
    )
    # Each replica watches its own consumer: every replica runs them.
    for name, check in (
        ("consumer-stalls", watches.stalls.tick),
        ("dead-letter-rate", watches.dead_letters.tick),
    ):
        job = runner.job(name, check, leader_only=False)
        scheduler.add_job(job, seconds=watches.interval, id=name, **every)
    maintain = _archive(cfg)
    if maintain is not None:
        scheduler.add_job(
            runner.job("archive", maintain),
            seconds=cfg.archive.compact_interval,
            id="archive",
            **every,
        )
    if cfg.retention.enabled:
        from service.retention import Retention

        retention = Retention(sessions, cfg.retention)
        scheduler.add_job(
            runner.job("retention", retention.tick),
            seconds=cfg.retention.interval,
            id="retention",
            **every,
        )
    if cfg.alerts.enabled and cfg.alerts.channels:
        deliver = alerts_tick(cfg, sessions, metrics, closers)
        scheduler.add_job(
            runner.job("alerts", deliver), seconds=cfg.alerts.interval, id="alerts", **every
        )
    if cfg.evaluation.render_html:
        from service.rendering import LatestHtml

        html = LatestHtml(sessions)
        closers.append(html.close)
        scheduler.add_job(
            runner.job("render", html.tick),
            seconds=max(cfg.evaluation.interval, 5.0),
            id="render",
            **every,
        )
    return scheduler


def _retraining(
    cfg: Config, sessions: sessionmaker[Session], metrics: Metrics
) -> Callable[[], object]:
    """The retraining tick: the trigger policy, then one step of every active run."""
    from service.metric_feeds import RetrainMetrics
    from service.retraining import build_retraining

    try:
        retraining = build_retraining(cfg, sessions, observer=RetrainMetrics(metrics))
    except RetrainError as exc:
        raise ServiceError(str(exc)) from exc
    return retraining.tick


def _archive(cfg: Config) -> Callable[[], object] | None:
    from service.cli_archive import archive_maintenance

    return archive_maintenance(cfg)


def alerts_tick(
    cfg: Config,
    sessions: sessionmaker[Session],
    metrics: Metrics,
    closers: list[Callable[[], None]],
) -> Callable[[], object]:
    """The outbox delivery tick; a channel that cannot be built stops the start-up."""
    from service.alerts import build_worker
    from service.metric_feeds import AlertMetrics

    try:
        worker = build_worker(cfg.alerts, sessions, AlertMetrics(metrics))
    except AlertError as exc:
        raise ServiceError(str(exc)) from exc
    closers.append(worker.close)
    return worker.tick
