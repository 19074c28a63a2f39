"""The rollout lifecycle's vocabulary: its phases, what a phase handler decides (a
:class:`Step`), what it works with (a :class:`Fleet`) and its signature
(:data:`Handler`).

    pending ──► progressing (step 1 … n) ──► promoting ──► promoted
                    │     ▲                       │
                    ▼     │ resume                ▼ (fatal router error)
                  paused ─┘ ◄─────────────────────┘
                    │
                    └──► (abort) ──► rolling_back ──► rolled_back
    progressing ──► rolling_back                       (a failed check)

:mod:`retrain.rollout.phases` holds one handler per phase and
:mod:`retrain.rollout.driver` the driver that commits a step and then acts on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from db.registry import ModelVersionRow, RegistryRepository
from db.rollouts import RolloutRow
from drift.canary import Check
from retrain.rollout.base import Router, Target
from retrain.rollout.settings import RolloutSettings
from retrain.rollout.span import Analyse


class Phase(StrEnum):
    PENDING = "pending"
    PROGRESSING = "progressing"
    PAUSED = "paused"
    PROMOTING = "promoting"
    PROMOTED = "promoted"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Phase.PROMOTED, Phase.ROLLED_BACK})

Action = Callable[[], object]


@dataclass
class Step:
    """What a handler decided: the phase it moved the rollout to (None: stays; the same
    phase again: a new step of it, with a history row), why, the router call to make
    once that is committed (``applies``: the index of the step whose split it states,
    recorded as applied once it returns), and the checks of the analysis it stored
    (reported after the commit)."""

    phase: Phase | None = None
    note: str = ""
    act: Action | None = None
    checks: Sequence[Check] = ()
    applies: int | None = None


@dataclass(frozen=True)
class Fleet:
    """Everything a handler works with: each model's router and rollout settings, the
    analysis, and ``clock`` (an aware UTC datetime)."""

    routers: Mapping[str, Router]
    models: Mapping[str, RolloutSettings]
    analyse: Analyse
    clock: Callable[[], datetime]


def target(version: ModelVersionRow) -> Target:
    return Target(version.version, version.uri, version.sha256)


def versions(session: Session, rollout: RolloutRow) -> tuple[ModelVersionRow, ModelVersionRow]:
    """The rollout's stable and canary versions."""
    registry = RegistryRepository(session)
    stable = registry.by_id(rollout.stable_version_id)
    canary = registry.by_id(rollout.canary_version_id)
    if stable is None or canary is None:
        raise LookupError(f"rollout {rollout.id}: a version it rolls out is not registered")
    return stable, canary


Handler = Callable[[Fleet, Session, RolloutRow], Step]
