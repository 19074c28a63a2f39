"""The composition root of ``driftwatch run``: every part of the service, built once.

:func:`build_service` builds, in order, the database sessions, the window evaluator
(its reference profiles checked), the ingestion loop, the replica's watches, the
leader elector, the rollout driver (when a model's rollout is enabled), the
retraining (trigger policy and run driver, shared by the scheduler's tick and the
API's manual requests; an accepted run starts its rollout), the scheduled jobs (performance
evaluation, archive maintenance, retention, the alert worker, rendering) and the
API's dependencies. Nothing is started here: :mod:`service.runner` starts and stops
what it gets, :mod:`service.scheduler` schedules the jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from consumers.loop import IngestLoop
from db.migrate import require_current
from db.session import make_engine, make_session_factory
from service.api.deps import ApiDeps
from service.config import Config
from service.leader import Elector, make_elector
from service.metric_feeds import ReportMetrics
from service.metrics import Metrics
from service.monitoring.evaluation import WindowEvaluator
from service.scheduler import Job
from service.wiring.api import build_api
from service.wiring.jobs import retraining_for, scheduled_jobs
from service.wiring.monitoring import build_evaluator, build_ingest_loop
from service.wiring.retraining import Retraining
from service.wiring.rollouts import rollouts_for
from service.wiring.watches import Watches, broker_ends, build_tally, build_watches


@dataclass
class Service:
    """What ``driftwatch run`` starts. ``closers`` close what the parts opened (worker
    processes, the alert worker), last opened first; ``api`` is None when it is off."""

    sessions: sessionmaker[Session]
    evaluator: WindowEvaluator
    loop: IngestLoop
    watches: Watches
    elector: Elector
    retraining: Retraining
    jobs: list[Job]
    api: ApiDeps | None
    closers: list[Callable[[], object]] = field(default_factory=list)

    def close(self) -> bool:
        """Close every part; False when one had to abandon work in flight (an alert
        delivery past its deadline), which is redone after a restart."""
        clean = True
        for close in reversed(self.closers):
            clean = close() is not False and clean
        return clean


def build_service(cfg: Config, metrics: Metrics, config_path: str | None = None) -> Service:
    """Every part of the service from ``cfg``; a part that cannot be built stops the
    start-up with an error naming its setting, and what was opened before is closed."""
    engine = make_engine(cfg.database.url)
    require_current(engine, f"driftwatch db upgrade --config {config_path or 'FILE'}")
    sessions = make_session_factory(engine)
    evaluator = build_evaluator(cfg, sessions, ReportMetrics(metrics), config_path)
    tally = build_tally(cfg)
    loop = build_ingest_loop(cfg, metrics, config_path, evaluator.specs(), tally)
    evaluator.follow(lambda: loop.progress)
    ends = broker_ends(cfg)
    watches = build_watches(cfg, sessions, lambda: loop.progress, tally, loop.recycle, ends)
    elector = make_elector(cfg)
    closers: list[Callable[[], object]] = [ends.close]
    try:
        rollouts = rollouts_for(cfg, sessions, metrics)
        retraining = retraining_for(cfg, sessions, metrics, rollouts)
        closers.append(retraining.close)
        jobs = scheduled_jobs(
            cfg,
            sessions,
            metrics,
            closers,
            evaluator=evaluator,
            loop=loop,
            watches=watches,
            retraining=retraining,
            rollouts=rollouts,
            is_leader=elector.is_leader,
        )
        api = build_api(
            cfg,
            sessions,
            retraining,
            metrics.registry,
            lambda: loop.progress.partitions,
            watches.stalls.problem,
            closers,
            rollouts,
        )
    except BaseException:
        for close in reversed(closers):
            close()
        loop.dlq.close(timeout=2.0)
        raise
    return Service(sessions, evaluator, loop, watches, elector, retraining, jobs, api, closers)
