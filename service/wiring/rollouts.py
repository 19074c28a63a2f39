"""Wiring of the rollouts: each model's ``rollout`` section turned into its router and
settings, and the rollout driver the scheduler's ``rollout`` job ticks and the run
driver starts rollouts through."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from retrain.errors import RetrainError
from retrain.rollout import Router, make_router
from retrain.rollout.driver import RolloutDriver, RolloutObserver
from retrain.rollout.lifecycle import Fleet
from retrain.rollout.settings import RolloutSettings
from retrain.rollout.span import Analyse
from service.config import Config
from service.errors import ServiceError
from service.metric_feeds import RolloutMetrics
from service.metrics import Metrics
from service.wiring.retraining import utc_now


def analysis() -> Analyse:
    """The canary analysis rollouts run, on the live stream's per-version aggregates."""
    from retrain.rollout.analysis import analyse

    return analyse


def rollout_settings(cfg: Config) -> dict[str, RolloutSettings]:
    return {name: m.rollout.settings(name, str(m.task)) for name, m in cfg.models.items()}


def step_weights(cfg: Config, model: str) -> list[int] | None:
    """The configured step weights of ``model``'s rollout (None: not a configured model)."""
    m = cfg.models.get(model)
    return None if m is None else [s.weight for s in m.rollout.steps]


def build_routers(cfg: Config) -> dict[str, Router]:
    """Each model's router; one that cannot be built raises a fatal RouterError naming
    its key."""
    return {
        name: make_router(m.rollout.router, m.rollout.sections(), model=name)
        for name, m in cfg.models.items()
    }


def build_rollouts(
    cfg: Config,
    sessions: sessionmaker[Session],
    *,
    analyse: Analyse | None = None,
    routers: Mapping[str, Router] | None = None,
    clock: Callable[[], datetime] = utc_now,
    observer: RolloutObserver | None = None,
) -> RolloutDriver:
    """The rollout driver of every configured model (``start`` works on any of them;
    ``enabled`` decides whether an accepted run starts one by itself)."""
    fleet = Fleet(
        routers if routers is not None else build_routers(cfg),
        rollout_settings(cfg),
        analyse if analyse is not None else analysis(),
        clock,
    )
    return RolloutDriver(sessions, fleet, observer=observer)


def rollouts_for(
    cfg: Config, sessions: sessionmaker[Session], metrics: Metrics | None = None
) -> RolloutDriver:
    """The rollout driver of every configured model, which the ``rollout`` job ticks.

    It runs whether or not a model's rollout is ``enabled``: ``enabled`` decides only
    whether an accepted run starts a rollout by itself, and a rollout started on
    demand (``driftwatch rollouts start``, the HTTP API) must be carried out too. A
    model with no ``rollout`` section has the ``manual`` router, which moves no
    traffic, and a tick with no active rollout is one query. A router that cannot be
    built stops the start-up."""
    try:
        observer = RolloutMetrics(metrics) if metrics is not None else None
        return build_rollouts(cfg, sessions, observer=observer)
    except RetrainError as exc:
        raise ServiceError(str(exc)) from exc
