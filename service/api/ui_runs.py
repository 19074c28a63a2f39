"""What the overview page shows of each run: its data, gates and timeline.

Read with :mod:`service.cli.run_record`, the record ``driftwatch runs show`` prints,
so the page and the command line say the same about a run; copied into plain values
inside the page's transaction, so the template reads no database row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from db.runs import RetrainRunRow
from service.api import views
from service.api.schemas import RunSummary
from service.cli.run_record import RunRecord, gate_label, load_records, phase_seconds


@dataclass(frozen=True)
class GateLine:
    label: str
    champion: float | None
    candidate: float | None
    threshold: float
    passed: bool
    # A gate without a metric counts holdout rows: shown as whole numbers.
    rows: bool


@dataclass(frozen=True)
class Step:
    phase: str
    # Empty when the stored note only repeats the phase's name.
    note: str
    entered_at: datetime


@dataclass(frozen=True)
class RunView:
    summary: RunSummary
    data_from: datetime
    data_to: datetime
    data_rows: int | None
    change_onset: datetime | None
    data_note: str | None
    champion: str | None
    candidate: str | None
    gates: list[GateLine]
    timeline: list[Step]
    # Seconds spent in each phase, in the order first entered.
    spent: dict[str, float]


def run_views(session: Session, runs: Sequence[RetrainRunRow], now: datetime) -> list[RunView]:
    return [_view(record, now) for record in load_records(session, runs)]


def _view(record: RunRecord, now: datetime) -> RunView:
    r = record.run
    return RunView(
        summary=views.run(r),
        data_from=r.data_from,
        data_to=r.data_to,
        data_rows=r.data_rows,
        change_onset=r.change_onset,
        data_note=r.data_note,
        champion=None if record.champion is None else record.champion.version,
        candidate=None if record.candidate is None else record.candidate.version,
        gates=[
            GateLine(
                gate_label(g),
                g.champion_value,
                g.candidate_value,
                g.threshold,
                g.passed,
                g.metric is None,
            )
            for g in record.gates
        ],
        timeline=[
            Step(p.phase, "" if p.note == p.phase else p.note, p.entered_at) for p in record.history
        ],
        spent={k: v for k, v in phase_seconds(r, record.history, now).items() if v > 0},
    )
