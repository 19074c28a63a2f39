"""The overview page's rollout panel: a model's newest rollout, the candidate's share of
traffic at each of its transitions, and its newest analysis.

The phase history stores the step, not the weight: the share is read off the
model's configured step weights (``models.<name>.rollout.steps``), as the state
machine reads them (a step past the configured ones is at the last weight). What
each phase sends to the candidate:

- ``pending``, ``rolling_back``, ``rolled_back``: nothing (the rollback takes it
  away; before the first step none was given);
- ``progressing`` and ``paused``: the weight of the row's step (a pause keeps the
  traffic as it was);
- ``promoting``, ``promoted``: all of it (the candidate becomes the stable version).

A model without configured steps (removed from the config since) shows the
current rollout's ``canary_percent`` for its present phase only; its history rows
get no share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from db.registry import RegistryRepository
from db.rollouts import RolloutAnalysisRow, RolloutPhaseRow, RolloutRepository, RolloutRow
from service.api.charts import Chart, Point, line_chart

NONE = frozenset({"pending", "rolling_back", "rolled_back"})
ALL = frozenset({"promoting", "promoted"})
FLAGGED = frozenset({"paused", "rolling_back", "rolled_back"})


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of the phase history; ``share`` is the candidate's percent of traffic
    (None: not known, the model's steps are no longer configured)."""

    entered_at: datetime
    phase: str
    step: int
    share: int | None
    note: str


@dataclass(frozen=True, slots=True)
class CheckView:
    name: str
    outcome: str
    value: float | None
    threshold: float
    n_canary: int
    n_stable: int
    reason: str


@dataclass(frozen=True, slots=True)
class AnalysisView:
    """The checks of one evaluation: the step they judged and the span they read."""

    step: int
    span_start: datetime
    span_end: datetime
    analysed_at: datetime
    checks: tuple[CheckView, ...]


@dataclass(frozen=True, slots=True)
class RolloutView:
    id: int
    phase: str
    active: bool
    step: int
    steps: int
    # The weight the router was last told (kept after a rollback or promotion), and
    # the candidate's share of traffic now (module docstring).
    canary_percent: int
    share: int
    stable: str
    candidate: str
    reason: str | None
    created_at: datetime
    history: tuple[Transition, ...]
    chart: Chart
    analysis: AnalysisView | None


def share(phase: str, step: int, weights: Sequence[int]) -> int | None:
    """The candidate's percent of traffic in ``phase`` at ``step`` (module docstring)."""
    if phase in NONE:
        return 0
    if phase in ALL:
        return 100
    if not weights:
        return None
    return weights[min(step, len(weights) - 1)]


def newest_analysis(rows: Sequence[RolloutAnalysisRow]) -> AnalysisView | None:
    """The checks of the newest evaluation: every row stored with the last one's step
    and time (one evaluation's checks are stored together)."""
    if not rows:
        return None
    last = rows[-1]
    mine = [r for r in rows if r.step == last.step and r.analysed_at == last.analysed_at]
    checks = tuple(
        CheckView(r.check, r.outcome, r.value, r.threshold, r.n_canary, r.n_stable, r.reason)
        for r in mine
    )
    return AnalysisView(last.step, last.span_start, last.span_end, last.analysed_at, checks)


def history(
    rollout: RolloutRow, rows: Sequence[RolloutPhaseRow], weights: Sequence[int]
) -> tuple[Transition, ...]:
    out = [
        Transition(r.entered_at, r.phase, r.step, share(r.phase, r.step, weights), r.note)
        for r in rows
    ]
    if not weights and out and out[-1].phase == rollout.phase and rollout.phase not in ALL:
        last = out[-1]
        current = 0 if rollout.phase in NONE else rollout.canary_percent
        out[-1] = Transition(last.entered_at, last.phase, last.step, current, last.note)
    return tuple(out)


def _now(rollout: RolloutRow, weights: Sequence[int]) -> int:
    known = share(rollout.phase, rollout.step, weights)
    return rollout.canary_percent if known is None else known


def weight_chart(candidate: str, transitions: Sequence[Transition]) -> Chart:
    """The candidate's share after each transition; a pause or rollback is flagged.
    Transitions made at the same instant are one point, the last of them."""
    last = {t.entered_at: t for t in transitions}
    return line_chart(
        "canary weight",
        [
            Point(at, candidate, None if t.share is None else t.share / 100, t.phase in FLAGGED)
            for at, t in last.items()
        ],
    )


def rollout_view(session: Session, model: str, weights: Sequence[int]) -> RolloutView | None:
    """The newest rollout of ``model`` (the active one, there being at most one), or None."""
    repository = RolloutRepository(session)
    newest = repository.rollouts(model, limit=1)
    if not newest:
        return None
    rollout = newest[0]
    registry = RegistryRepository(session)
    stable, candidate = (
        registry.by_id(rollout.stable_version_id),
        registry.by_id(rollout.canary_version_id),
    )
    candidate_name = candidate.version if candidate is not None else f"#{rollout.canary_version_id}"
    transitions = history(rollout, repository.history(rollout.id), weights)
    return RolloutView(
        id=rollout.id,
        phase=rollout.phase,
        active=rollout.active,
        step=rollout.step,
        steps=len(weights),
        canary_percent=rollout.canary_percent,
        share=_now(rollout, weights),
        stable=stable.version if stable is not None else f"#{rollout.stable_version_id}",
        candidate=candidate_name,
        reason=rollout.reason,
        created_at=rollout.created_at,
        history=transitions,
        chart=weight_chart(candidate_name, transitions),
        analysis=newest_analysis(repository.analyses(rollout.id)),
    )
