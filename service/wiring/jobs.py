"""The jobs ``driftwatch run`` schedules, built from the config and the live parts.

Leader-only, because they write shared state: window and performance evaluation,
the late-label join, report rendering, the retraining tick, the rollout tick, alert
delivery, retention and archive maintenance. On every replica: keeping the consumer's
bins on the current reference profiles (the ``profiles`` step of ``evaluate``) and the
watches of this replica's own consumer (``consumer-stalls``, ``dead-letter-rate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from drift.schema import ModelSpec
from retrain.errors import RetrainError
from retrain.rollout.driver import RolloutDriver
from service.alerts.errors import AlertError
from service.config import Config
from service.errors import ServiceError
from service.metric_feeds import ReportMetrics
from service.metrics import Metrics
from service.monitoring.evaluation import WindowEvaluator
from service.monitoring.performance import PerformanceEvaluator
from service.scheduler import Job, Step, job
from service.wiring.monitoring import (
    archive_maintenance,
    build_late_labels,
    build_performance_evaluator,
)
from service.wiring.retraining import Retraining, build_retraining
from service.wiring.watches import Watches


class Rebinning(Protocol):
    """What follows the current reference profiles' bins: the ingestion loop."""

    def replace_models(self, specs: Mapping[str, ModelSpec]) -> None: ...


def follow_profiles(evaluator: WindowEvaluator, loop: Rebinning) -> Callable[[], None]:
    """Reload the reference profiles and hand the loop new bins when one changed."""
    current = dict(evaluator.specs())

    def profiles() -> None:
        specs = evaluator.refresh_profiles(strict=False)
        if specs != current:
            current.clear()
            current.update(specs)
            loop.replace_models(specs)

    return profiles


def evaluation_job(
    cfg: Config, evaluator: WindowEvaluator, loop: Rebinning, performance: PerformanceEvaluator
) -> Job:
    """Every replica bins its events on the current profiles, leader or not; then the
    leader evaluates, the performance reports after the drift reports (a performance
    report links its window's drift report)."""
    return Job(
        "evaluate",
        cfg.evaluation.interval,
        (
            Step("profiles", follow_profiles(evaluator, loop), leader_only=False),
            Step("evaluate", evaluator.tick),
            Step("performance", performance.tick),
        ),
    )


def retraining_for(
    cfg: Config,
    sessions: sessionmaker[Session],
    metrics: Metrics,
    rollouts: RolloutDriver | None = None,
) -> Retraining:
    """The trigger policy and run driver; a retrain setting that cannot be built stops the
    start-up. The scheduler ticks it, the API makes its manual requests through it; an
    accepted run starts its rollout through ``rollouts``."""
    from retrain.exports import BackgroundExports
    from service.metric_feeds import RetrainMetrics

    try:
        return build_retraining(
            cfg,
            sessions,
            exports=BackgroundExports(cfg.retrain.exports),
            observer=RetrainMetrics(metrics),
            on_watch_error=lambda _reason: metrics.kubernetes_watch_errors.inc(),
            on_accepted=rollouts.on_accepted if rollouts is not None else None,
        )
    except RetrainError as exc:
        raise ServiceError(str(exc)) from exc


def alerts_tick(
    cfg: Config,
    sessions: sessionmaker[Session],
    metrics: Metrics,
    closers: list[Callable[[], object]],
    is_leader: Callable[[], bool] = lambda: True,
) -> Callable[[], object]:
    """The outbox delivery tick; a channel that cannot be built stops the start-up.
    Leadership is asked again before every send (a tick may outlive it)."""
    from service.alerts import build_worker
    from service.metric_feeds import AlertMetrics

    try:
        worker = build_worker(cfg.alerts, sessions, AlertMetrics(metrics), is_leader=is_leader)
    except AlertError as exc:
        raise ServiceError(str(exc)) from exc
    closers.append(worker.close)
    return worker.tick


def maintenance_jobs(
    cfg: Config,
    sessions: sessionmaker[Session],
    metrics: Metrics,
    closers: list[Callable[[], object]],
    is_leader: Callable[[], bool] = lambda: True,
) -> list[Job]:
    """The leader's jobs that only some configs have: archive maintenance, the late-label
    join, retention, alert delivery and the rendering of the newest reports."""
    jobs = []
    maintain = archive_maintenance(cfg)
    if maintain is not None:
        jobs.append(job("archive", maintain, cfg.archive.compact_interval))
    late = build_late_labels(
        cfg,
        sessions,
        lambda model, outcome, n: metrics.late_labels.labels(model, outcome).inc(n),
        on_held=lambda model: metrics.windows_unjudged.labels(model, "late_labels").inc(),
    )
    if late is not None:
        jobs.append(job("late-labels", late.tick, cfg.late_labels.interval))
    if cfg.retention.enabled:
        from service.monitoring.retention import Retention

        jobs.append(
            job(
                "retention",
                Retention(sessions, cfg.retention, cfg.evaluation.backfill).tick,
                cfg.retention.interval,
            )
        )
    if cfg.alerts.enabled and cfg.alerts.channels:
        deliver = alerts_tick(cfg, sessions, metrics, closers, is_leader)
        jobs.append(job("alerts", deliver, cfg.alerts.interval))
    if cfg.evaluation.render_html:
        from service.monitoring.rendering import LatestHtml

        html = LatestHtml(sessions, deadline=cfg.evaluation.render_timeout)
        closers.append(html.close)
        jobs.append(job("render", html.tick, max(cfg.evaluation.interval, 5.0)))
    return jobs


def scheduled_jobs(
    cfg: Config,
    sessions: sessionmaker[Session],
    metrics: Metrics,
    closers: list[Callable[[], object]],
    *,
    evaluator: WindowEvaluator,
    loop: Rebinning,
    watches: Watches,
    retraining: Retraining,
    rollouts: RolloutDriver | None = None,
    is_leader: Callable[[], bool] = lambda: True,
) -> list[Job]:
    """Every job of ``driftwatch run``; ``closers`` gets what the jobs opened;
    ``is_leader`` is asked again inside jobs that may outlive leadership (alerts)."""
    performance = build_performance_evaluator(
        cfg, sessions, ReportMetrics(metrics), evaluator.finality
    )
    rollout = [] if rollouts is None else [job("rollout", rollouts.tick, cfg.retrain.tick)]
    return [
        evaluation_job(cfg, evaluator, loop, performance),
        job("retrain", retraining.tick, cfg.retrain.tick),
        *rollout,
        # Each replica watches its own consumer: every replica runs them.
        job("consumer-stalls", watches.stalls.tick, watches.interval, leader_only=False),
        job("dead-letter-rate", watches.dead_letters.tick, watches.interval, leader_only=False),
        *maintenance_jobs(cfg, sessions, metrics, closers, is_leader),
    ]
