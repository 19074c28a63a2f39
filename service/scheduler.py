"""The scheduler beside the consumer: periodic jobs, who runs them, and their metrics.

Every job runs through :class:`JobRunner`, which gives it what each used to repeat:
a leadership check (a leader-only job is skipped on followers, counted as
``not_leader``), error handling (a failed run is logged and retried at the next
one; nothing ends a job for good), and its metrics (last success, duration,
failures). APScheduler's own skips (a run missed past its grace time, or one
refused because the previous run is still going) are counted by
:meth:`JobRunner.on_event`.

Which jobs ``driftwatch run`` has, and which of their steps every replica runs, is
decided in :mod:`service.wiring.jobs`; this module only schedules them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from db.errors import StoreError
from drift.errors import DriftError
from retrain.errors import RetrainError
from service.alerts.errors import AlertError
from service.errors import ServiceError
from service.leader import Elector
from service.metrics import Metrics, SchedulerMetrics

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


@dataclass(frozen=True, slots=True)
class Step:
    """One piece of work with its own metrics; a follower skips it when ``leader_only``."""

    name: str
    work: Callable[[], object]
    leader_only: bool = True


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduler job: its steps run in order, each whatever became of the one before,
    every ``every`` seconds (:mod:`service.wiring.jobs` says which jobs ``run`` has)."""

    name: str
    every: float
    steps: tuple[Step, ...]


def job(name: str, work: Callable[[], object], every: float, *, leader_only: bool = True) -> Job:
    """A job of one step of the same name."""
    return Job(name, every, (Step(name, work, leader_only),))


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
        # Per job whose run outlasts its interval: the runs refused meanwhile.
        self._overruns: dict[str, int] = {}
        self._lock = threading.Lock()

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

    def steps(self, job: Job) -> Callable[[], None]:
        """``job`` as a scheduler job: each of its steps under :meth:`run`."""

        def run() -> None:
            for step in job.steps:
                self.run(step.name, step.work, leader_only=step.leader_only)

        # APScheduler's log lines name a job by its function's qualified name.
        run.__name__ = run.__qualname__ = job.name
        return run

    def on_event(self, event: Any) -> None:
        """APScheduler listener for missed runs, runs refused by ``max_instances``, and
        the end of a run that some were refused behind."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

        if event.code not in (EVENT_JOB_MISSED, EVENT_JOB_MAX_INSTANCES):
            # APScheduler reports a run's end once it no longer counts as running, so a
            # run refused after this belongs to the next overrun.
            with self._lock:
                refused = self._overruns.pop(event.job_id, 0)
            if refused:
                took = (datetime.now(UTC) - event.scheduled_run_time).total_seconds()
                log.info(
                    "job %s ended %.1f s after its start time; %d run(s) were skipped meanwhile",
                    event.job_id, took, refused,
                )  # fmt: skip
        elif event.code == EVENT_JOB_MISSED:
            self.metrics.skipped.labels(event.job_id, "misfire").inc()
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.metrics.skipped.labels(event.job_id, "max_instances").inc()
            with self._lock:
                refused = self._overruns[event.job_id] = self._overruns.get(event.job_id, 0) + 1
            if refused == 1:  # APScheduler's own line for every refused run is filtered out
                log.warning(
                    "job %s is still running at its next run time; its runs are skipped "
                    "until it ends",
                    event.job_id,
                )

    def _failed(self, name: str) -> None:
        self.metrics.failures.labels(name).inc()
        self._failures(name)


def leader_gauge(metrics: SchedulerMetrics, elector: Elector) -> None:
    """``driftwatch_leader{backend}`` reads the elector at every scrape."""
    metrics.leader.labels(elector.backend).set_function(lambda: 1.0 if elector.is_leader() else 0.0)


class RefusedRuns(logging.Filter):
    """Drops APScheduler's warning for each run refused while the job's last run is still
    going (a slow evaluation tick would repeat it every period): the runner counts those
    runs and logs an overrun once, when it begins and when it ends."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances" not in str(record.msg)


def watch(scheduler: Any, runner: JobRunner) -> None:
    """Count the scheduler's skipped runs in ``runner``'s metrics."""
    from apscheduler.events import (
        EVENT_JOB_ERROR,
        EVENT_JOB_EXECUTED,
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
    )

    events = EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
    scheduler.add_listener(runner.on_event, events)
    logger = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, RefusedRuns) for f in logger.filters):
        logger.addFilter(RefusedRuns())


def build_scheduler(jobs: Sequence[Job], metrics: Metrics, elector: Elector) -> Any:
    """The scheduler of ``driftwatch run``, not started: every job every ``job.every``
    seconds, each of its steps run by one :class:`JobRunner` that ``elector`` guards."""
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler_metrics = SchedulerMetrics(metrics.registry)
    leader_gauge(scheduler_metrics, elector)
    # The older per-job failure counter, kept for the dashboards that read it.
    runner = JobRunner(
        elector, scheduler_metrics, lambda job: metrics.evaluation_failures.labels(job).inc()
    )
    scheduler = BackgroundScheduler(timezone="UTC")
    watch(scheduler, runner)
    for each in jobs:
        scheduler.add_job(
            runner.steps(each), trigger="interval", seconds=each.every, id=each.name, **COMMON
        )
    return scheduler
