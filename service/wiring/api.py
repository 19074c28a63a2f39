"""The API's dependencies built from the service's config and live parts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from retrain.rollout.driver import RolloutDriver
from service.api.auth import TokenCheck, load_tokens
from service.api.deps import ApiDeps
from service.api.throttle import Throttle
from service.config import Config
from service.config.api import MIN_SECRET_CHARS, ApiConfig
from service.errors import ConfigError
from service.monitoring.rendering import OnDemandHtml
from service.wiring.retraining import Retraining
from service.wiring.rollouts import analysis, rollout_settings


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
    rollouts: RolloutDriver | None = None,
) -> ApiDeps:
    """The API's dependencies; unreadable token or secret files stop start-up naming the key.
    ``rollouts`` is the service's rollout driver (None: an API without the service)."""
    throttle = Throttle(
        cfg.api.login_attempts,
        cfg.api.login_period,
        cfg.api.login_clients,
        lambda: clock().timestamp(),
    )
    return ApiDeps(
        sessions=sessions,
        models={name: m.labels.enabled for name, m in cfg.models.items()},
        tokens=TokenCheck(load_tokens(cfg.api.tokens), throttle),
        retrain_policy=retraining.policy,
        render_html=render_html,
        consumer_problem=consumer_problem,
        registry=registry,
        clock=clock,
        session_secret=session_secret(cfg.api),
        session_lifetime=cfg.api.session_lifetime,
        metrics_open=cfg.api.metrics_open,
        max_body_bytes=cfg.api.max_body_bytes,
        cookie_secure=cfg.api.cookie_secure,
        rollouts=rollouts,
        rollout_settings=rollout_settings(cfg),
        analyse=rollouts.fleet.analyse if rollouts is not None else analysis(),
    )


def session_secret(api: ApiConfig) -> str:
    """The secret that signs session cookies: inline, or read from its file now; a missing,
    unreadable or short one stops start-up naming the key."""
    if api.session_secret is not None:
        return api.session_secret
    key = "config: api.session_secret_file"
    if api.session_secret_file is None:
        raise ConfigError(["config: api.session_secret: required when the API is served"])
    try:
        secret = api.session_secret_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{key}: cannot read {api.session_secret_file}: {exc}"]) from None
    if len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(
            [
                f"{key}: {api.session_secret_file} holds {len(secret)} characters; "
                f"at least {MIN_SECRET_CHARS} are needed"
            ]
        )
    return secret


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
    closers: list[Callable[[], object]],
    rollouts: RolloutDriver | None = None,
) -> ApiDeps | None:
    """The API's dependencies when ``api.port`` is set, None when it is 0 (off);
    ``closers`` gets the on-demand renderer's worker; the rollout routes record
    transitions through ``rollouts``, the service's driver."""
    if not cfg.api.port:
        return None
    problem = consumer_readiness(registry, consumer_partitions, stall)
    renderer = OnDemandHtml(sessions, deadline=cfg.evaluation.render_timeout)
    try:
        deps = api_deps(
            cfg, sessions, retraining, registry, problem, renderer.html, rollouts=rollouts
        )
    except BaseException:
        renderer.close()
        raise
    closers.append(renderer.close)
    return deps
