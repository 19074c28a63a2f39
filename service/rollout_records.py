"""A rollout as the CLI (``driftwatch rollouts list/show --json``) and the HTTP API
(``/v1/rollouts``) show it: one record-building path for both, so the two never
disagree. Steps are counted from 1, as in the alerts.

The weight history is read from ``rollout_phases``: the canary's weight changes only
when a step is entered (that step's configured weight), on promotion (100) and on
rollback (0); a history row records the step, so its weight is the model's configured
step weight (None when the model's rollout settings are no longer configured).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.registry import ModelVersionRow
from db.rollouts import RolloutAnalysisRow, RolloutPhaseRow, RolloutRow

# The phases that set the canary's weight, besides entering a step.
_FINAL_WEIGHT = {"promoted": 100, "rolled_back": 0}


@dataclass(frozen=True)
class Versions:
    """A rollout's stable and canary version names (None: no longer registered)."""

    stable: str | None
    canary: str | None


def versions_of(session: Session, rollouts: Sequence[RolloutRow]) -> dict[int, Versions]:
    """Each rollout's versions by rollout id, in one query for any number of rollouts."""
    ids = {i for r in rollouts for i in (r.stable_version_id, r.canary_version_id)}
    if not ids:
        return {}
    v = ModelVersionRow
    names = {row.id: row.version for row in session.scalars(select(v).where(v.id.in_(ids)))}
    return {
        r.id: Versions(names.get(r.stable_version_id), names.get(r.canary_version_id))
        for r in rollouts
    }


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def rollout_json(r: RolloutRow, versions: Versions) -> dict[str, Any]:
    """A rollout as ``rollouts list --json`` prints it (and ``show --json`` begins)."""
    return {
        "id": r.id,
        "model": r.model,
        "run_id": r.run_id,
        "phase": r.phase,
        "active": r.active,
        "step": r.step + 1,
        "canary_percent": r.canary_percent,
        "stable": versions.stable,
        "canary": versions.canary,
        "reason": r.reason,
        "paused_from": r.paused_from,
        "failed_checks": r.failed_checks,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
        "finished_at": iso(r.finished_at),
    }


def analysis_json(a: RolloutAnalysisRow) -> dict[str, Any]:
    return {
        "check": a.check,
        "outcome": a.outcome,
        "value": a.value,
        "threshold": a.threshold,
        "n_canary": a.n_canary,
        "n_stable": a.n_stable,
        "reason": a.reason,
        "details": json.loads(a.details),
        "span_start": a.span_start.isoformat(),
        "span_end": a.span_end.isoformat(),
        "analysed_at": a.analysed_at.isoformat(),
    }


def by_step(analyses: Sequence[RolloutAnalysisRow]) -> dict[int, list[RolloutAnalysisRow]]:
    """Analyses by step (counted from 1), steps and checks in the order stored."""
    out: dict[int, list[RolloutAnalysisRow]] = {}
    for a in analyses:
        out.setdefault(a.step + 1, []).append(a)
    return out


def weight_history(
    history: Sequence[RolloutPhaseRow], step_weights: Sequence[int] | None
) -> list[dict[str, Any]]:
    """Each change of the canary's weight, oldest first (module docstring): entering a
    step, promotion, rollback. ``step_weights`` are the model's configured step weights
    (None: not configured, and a step's weight is unknown)."""
    out: list[dict[str, Any]] = []
    for p in history:
        if p.phase == "progressing":
            weight = None
            if step_weights:
                weight = step_weights[min(p.step, len(step_weights) - 1)]
        elif p.phase in _FINAL_WEIGHT:
            weight = _FINAL_WEIGHT[p.phase]
        else:
            continue
        if out and out[-1]["step"] == p.step + 1 and out[-1]["canary_percent"] == weight:
            continue  # a step resumed after a pause: the same weight again
        out.append({"step": p.step + 1, "canary_percent": weight, "at": p.entered_at.isoformat()})
    return out


def show_json(
    r: RolloutRow,
    versions: Versions,
    history: Sequence[RolloutPhaseRow],
    analyses: Sequence[RolloutAnalysisRow],
    step_weights: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Everything stored about one rollout (``rollouts show --json``); ``step_weights``
    as for :func:`weight_history`."""
    return {
        **rollout_json(r, versions),
        "step_started_at": iso(r.step_started_at),
        "applied_at": iso(r.applied_at),
        "phase_deadline": iso(r.phase_deadline),
        "router_errors": r.router_errors,
        "history": [
            {
                "phase": p.phase,
                "step": p.step + 1,
                "note": p.note,
                "entered_at": p.entered_at.isoformat(),
            }
            for p in history
        ],
        "weights": weight_history(history, step_weights),
        "analyses": [
            {"step": step, "checks": [analysis_json(a) for a in rows]}
            for step, rows in by_step(analyses).items()
        ],
    }
