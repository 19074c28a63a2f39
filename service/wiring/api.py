"""The API's dependencies built from the service's config and live parts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from service.api.auth import TokenCheck, load_tokens
from service.api.deps import ApiDeps
from service.config import Config
from service.monitoring.rendering import OnDemandHtml
from service.wiring.retraining import Retraining


def utc_now() -> datetime:
    return datetime.now(UTC)


def api_deps(
    cfg: Config,
    sessions: sessionmaker[Session],
    retraining: Retraining,
    registry: CollectorRegistry,
    consumer_problem: Callable[[], str | None],
    render_html: Callable[[int], str],
    clock: Callable[[], datetime] = utc_now,
) -> ApiDeps:
    """The API's dependencies; unreadable token files stop start-up naming the key."""
    return ApiDeps(
        sessions=sessions,
        models={name: m.labels.enabled for name, m in cfg.models.items()},
        tokens=TokenCheck(load_tokens(cfg.api.tokens)),
        retrain_policy=retraining.policy,
        render_html=render_html,
        consumer_problem=consumer_problem,
        registry=registry,
        clock=clock,
        metrics_open=cfg.api.metrics_open,
        max_body_bytes=cfg.api.max_body_bytes,
        cookie_secure=cfg.api.cookie_secure,
    )


def consumer_readiness(
    registry: CollectorRegistry,
    partitions: Callable[[], frozenset[int]],
    stall: Callable[[], str | None],
) -> Callable[[], str | None]:
    """Why the consumer is not ready, or None: the loop sets ``driftwatch_healthy`` to 0
    while Kafka, the database or the dead-letter topic cannot be reached (it is stalled
    then), knows no partitions until the topic's metadata arrives, and ``stall`` is the
    stall watch's verdict (:meth:`service.monitoring.stalls.StallWatch.problem`), the one the
    ``consumer_stalled`` alert follows."""

    def problem() -> str | None:
        if registry.get_sample_value("driftwatch_healthy") != 1:
            return (
                "the consumer is stalled: Kafka, the database or the dead-letter topic "
                "is unreachable"
            )
        if not partitions():
            return "the consumer has not seen the predictions topic's partitions yet"
        return stall()

    return problem


def build_api(
    cfg: Config,
    sessions: sessionmaker[Session],
    retraining: Retraining,
    registry: CollectorRegistry,
    consumer_partitions: Callable[[], frozenset[int]],
    stall: Callable[[], str | None],
    closers: list[Callable[[], None]],
) -> ApiDeps | None:
    """The API's dependencies when ``api.port`` is set, None when it is 0 (off);
    ``closers`` gets the on-demand renderer's worker."""
    if not cfg.api.port:
        return None
    problem = consumer_readiness(registry, consumer_partitions, stall)
    renderer = OnDemandHtml(sessions)
    try:
        deps = api_deps(cfg, sessions, retraining, registry, problem, renderer.html)
    except BaseException:
        renderer.close()
        raise
    closers.append(renderer.close)
    return deps
