"""What ``driftwatch runs`` reads about runs, and the JSON it prints.

A run's record spans five tables (the run, its phase history, its gate results,
the registry versions it compared, the decision that started it). They are
read with one query per table for any number of runs, never one per run, so a
``runs list --limit 50`` costs the same few queries as a ``runs show``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.registry import ModelVersionRow
from db.runs import RetrainRunRow, RunPhaseRow, ValidationResultRow
from db.triggers import TriggerDecisionRow

_Row = TypeVar("_Row", RunPhaseRow, ValidationResultRow)


@dataclass(frozen=True)
class RunRecord:
    """One run with everything stored about it; ``history`` and ``gates`` in write order."""

    run: RetrainRunRow
    history: Sequence[RunPhaseRow]
    gates: Sequence[ValidationResultRow]
    champion: ModelVersionRow | None
    candidate: ModelVersionRow | None
    decision: TriggerDecisionRow | None


def load_records(session: Session, runs: Sequence[RetrainRunRow]) -> list[RunRecord]:
    """The records of ``runs``, in their order."""
    ids = [r.id for r in runs]
    if not ids:
        return []
    p, g, d, v = RunPhaseRow, ValidationResultRow, TriggerDecisionRow, ModelVersionRow
    history = _by_run(session.scalars(select(p).where(p.run_id.in_(ids)).order_by(p.id)))
    gates = _by_run(session.scalars(select(g).where(g.run_id.in_(ids)).order_by(g.id)))
    decisions = {
        row.run_id: row
        for row in session.scalars(select(d).where(d.run_id.in_(ids)).order_by(d.id.desc()))
    }
    version_ids = {
        i for r in runs for i in (r.champion_version_id, r.candidate_version_id) if i is not None
    }
    versions = (
        {row.id: row for row in session.scalars(select(v).where(v.id.in_(version_ids)))}
        if version_ids
        else {}
    )
    return [
        RunRecord(
            run=r,
            history=history.get(r.id, []),
            gates=gates.get(r.id, []),
            champion=versions.get(r.champion_version_id or -1),
            candidate=versions.get(r.candidate_version_id or -1),
            decision=decisions.get(r.id),
        )
        for r in runs
    ]


def _by_run(rows: Iterable[_Row]) -> dict[int, list[_Row]]:
    out: dict[int, list[_Row]] = {}
    for row in rows:
        out.setdefault(row.run_id, []).append(row)
    return out


def phase_seconds(
    run: RetrainRunRow, history: Sequence[RunPhaseRow], now: datetime
) -> dict[str, float]:
    """Seconds spent in each phase, in the order first entered: a phase lasts until the
    next history row, the current one until the run finished (its final phase: 0) or
    ``now``. A phase entered twice adds up."""
    out: dict[str, float] = {}
    end_of_last = run.finished_at or now
    for row, following in zip(history, [*history[1:], None], strict=True):
        end = following.entered_at if following is not None else end_of_last
        out[row.phase] = out.get(row.phase, 0.0) + max(0.0, (end - row.entered_at).total_seconds())
    return out


def gate_label(g: ValidationResultRow) -> str:
    """``min_delta accuracy``, ``slice_max_degradation accuracy [DE]``, ``min_holdout``."""
    return " ".join(filter(None, (g.gate, g.metric, f"[{g.slice}]" if g.slice else None)))


def show_json(record: RunRecord, now: datetime) -> dict[str, Any]:
    """Everything stored about one run (``runs show --json``)."""
    r, d = record.run, record.decision
    return {
        **_head(r),
        "decision": None
        if d is None
        else {
            "id": d.id,
            "cause_kind": d.cause_kind,
            "cause_key": d.cause_key,
            "reason": d.reason,
            "evidence": d.evidence_ids,
        },
        "data": _data(r),
        "champion": _version(record.champion),
        "candidate": _version(record.candidate),
        "gates": [
            {
                "gate": g.gate,
                "metric": g.metric,
                "slice": g.slice,
                "champion": g.champion_value,
                "candidate": g.candidate_value,
                "threshold": g.threshold,
                "passed": g.passed,
            }
            for g in record.gates
        ],
        "timeline": [
            {"phase": p.phase, "note": p.note, "entered_at": p.entered_at.isoformat()}
            for p in record.history
        ],
        "timings": phase_seconds(r, record.history, now),
        "launched_at": {
            "train": _iso(r.train_launched_at),
            "validate": _iso(r.validate_launched_at),
        },
        "log_tails": {"train": r.train_log_tail, "validate": r.validate_log_tail},
    }


def list_json(record: RunRecord, now: datetime) -> dict[str, Any]:
    """A run in a listing (``runs list --json``): what ``show`` has, less the timeline,
    the versions' metrics and the log tails; gates as counts and the names that failed."""
    r, c = record.run, record.candidate
    end = r.finished_at or now
    return {
        **_head(r),
        "data": _data(r),
        "candidate": None
        if c is None
        else {"version": c.version, "stage": c.stage, "uri": c.uri, "sha256": c.sha256},
        "gates": {
            "passed": sum(g.passed for g in record.gates),
            "failed": sum(not g.passed for g in record.gates),
            "failed_gates": [gate_label(g) for g in record.gates if not g.passed],
        },
        "seconds": max(0.0, (end - r.created_at).total_seconds()),
        "timings": phase_seconds(r, record.history, now),
    }


def _head(r: RetrainRunRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "model": r.model,
        "phase": r.phase,
        "active": r.active,
        "trigger": r.trigger,
        "reason": r.reason,
        "verdict": r.verdict,
        "failure_reason": r.failure_reason,
        "created_at": r.created_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
        "finished_at": _iso(r.finished_at),
    }


def _data(r: RetrainRunRow) -> dict[str, Any]:
    return {
        "from": r.data_from.isoformat(),
        "to": r.data_to.isoformat(),
        "rows": r.data_rows,
        "uri": r.data_uri,
        "change_onset": _iso(r.change_onset),
        "note": r.data_note,
    }


def _version(v: ModelVersionRow | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "version": v.version,
        "stage": v.stage,
        "uri": v.uri,
        "sha256": v.sha256,
        "metrics": v.metric_values,
        "training": v.training_record,
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
