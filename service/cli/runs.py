"""``driftwatch runs``: list, show and cancel retraining runs.

``show`` and ``list`` print text for a person and, with ``--json``, what
:mod:`service.cli.run_record` builds for a program.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.registry import ModelVersionRow
from db.runs import RunRepository
from db.session import transaction
from service.cli.common import load, sessions_for
from service.cli.run_record import (
    RunRecord,
    list_json,
    load_records,
    phase_seconds,
    show_json,
)
from service.errors import ServiceError
from service.wiring.retraining import build_retraining, utc_now

# What the text shows of a version's training record, in this order (the JSON has it all).
TRAINING_KEYS = ("estimator", "source", "rows", "seconds")


def cmd_runs_list(args: argparse.Namespace) -> int:
    cfg = load(args)
    with transaction(sessions_for(cfg, args)) as s:
        rows = RunRepository(s).runs(args.model, args.limit)
        if args.json:
            now = utc_now()
            records = load_records(s, rows)
            print(json.dumps([list_json(r, now) for r in records], indent=2))
            return 0
        print(
            f"{'run':>5} {'model':<12} {'phase':<10} {'trigger':<14} {'created (UTC)':<20} verdict"
        )
        for r in rows:
            created = r.created_at.strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{r.id:>5} {r.model:<12} {r.phase:<10} {r.trigger:<14} {created:<20} "
                f"{r.verdict or ''}"
            )
    return 0


def cmd_runs_show(args: argparse.Namespace) -> int:
    cfg = load(args)
    sessions = sessions_for(cfg, args)
    if args.json:
        with transaction(sessions) as s:
            record = _record(s, args.id)
            print(json.dumps(show_json(record, utc_now()), indent=2))
        return 0
    return print_run(sessions, args.id)


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    cfg = load(args)
    retraining = build_retraining(cfg, sessions_for(cfg, args))
    try:
        phase = retraining.driver.cancel(args.id, args.reason)
    except LookupError as exc:
        raise ServiceError(str(exc)) from exc
    print(f"run {args.id}: {phase}")
    return 0


def _record(session: Session, run_id: int) -> RunRecord:
    run = RunRepository(session).get(run_id)
    if run is None:
        raise ServiceError(f"no run {run_id}")
    (record,) = load_records(session, [run])
    return record


def print_run(sessions: sessionmaker[Session], run_id: int) -> int:
    """The run's data, trigger, versions, timeline, gates and, if it failed, why."""
    with transaction(sessions) as s:
        record = _record(s, run_id)
        run = record.run
        # Accepted and rejected runs carry the same word as verdict: say it once.
        verdict = f" ({run.verdict})" if run.verdict and run.verdict != run.phase else ""
        print(f"run {run.id} of {run.model}: {run.phase}{verdict}")
        print(f"  data: {run.data_from.isoformat()} .. {run.data_to.isoformat()}", end="")
        print(f", {run.data_rows} rows in {run.data_uri}" if run.data_uri else "")
        if run.change_onset is not None:
            print(f"  change onset: {run.change_onset.isoformat()}")
        if run.data_note:
            print(f"  data note: {run.data_note}")
        _print_decision(record)
        _print_version("champion", record.champion)
        _print_version("candidate", record.candidate)
        _print_timeline(record)
        _print_gates(record)
        if run.failure_reason:
            print(f"  failure: {run.failure_reason}")
            tail = run.validate_log_tail or run.train_log_tail
            if tail:
                print(
                    "  log tail:\n" + "\n".join(f"    {line}" for line in tail.splitlines()[-20:])
                )
    return 0


def _print_decision(record: RunRecord) -> None:
    decision = record.decision
    if decision is None:
        return
    evidence = ", ".join(f"{k} {v}" for k, v in sorted(decision.evidence_ids.items()))
    # A manual request's key starts with its kind ("manual-…"): the key goes last.
    print(f"  trigger: {decision.cause_kind}: {decision.reason} (cause {decision.cause_key})")
    if evidence:
        print(f"  evidence: {evidence}")


def _print_version(label: str, version: ModelVersionRow | None) -> None:
    if version is None:
        return
    print(f"  {label}: {version.version} ({version.stage}) {version.uri}")
    training = version.training_record
    if training:
        shown = ", ".join(f"{k} {_value(training[k])}" for k in TRAINING_KEYS if k in training)
        if shown:
            print(f"    training: {shown}")


def _value(value: Any) -> str:
    """A training record's value on one line: ``{"train": 400}`` as ``train 400``."""
    if isinstance(value, Mapping):
        return " ".join(f"{k} {v}" for k, v in value.items())
    return f"{value:g}" if isinstance(value, float) else str(value)


def _print_timeline(record: RunRecord) -> None:
    seconds = phase_seconds(record.run, record.history, utc_now())
    print("  timeline:")
    for p in record.history:
        # A note that only repeats the phase's name ("accepted") is said once.
        note = "" if p.note == p.phase else p.note
        print(f"    {p.entered_at.strftime('%Y-%m-%d %H:%M:%S')}  {p.phase:<10} {note}".rstrip())
    spent = ", ".join(f"{phase} {s:.1f} s" for phase, s in seconds.items() if s > 0)
    if spent:
        print(f"  time spent: {spent}")


def _print_gates(record: RunRecord) -> None:
    if record.gates:
        print("  gates:")
    for g in record.gates:
        what = (g.metric or "holdout rows") + (f" [{g.slice}]" if g.slice else "")
        # A gate without a metric counts rows: whole numbers, not 3514.0000.
        rows = g.metric is None
        print(
            f"    {'pass' if g.passed else 'FAIL'}  {g.gate:<22} {what:<24} champion "
            f"{_num(g.champion_value, rows)}  candidate {_num(g.candidate_value, rows)}  "
            f"threshold {g.threshold:g}"
        )


def _num(value: float | None, rows: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if rows else f"{value:.4f}"


def add_runs_commands(sub: Any) -> None:
    runs = sub.add_parser("runs", help="retraining runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    ls = runs_sub.add_parser("list", help="the newest runs")
    ls.add_argument("--config")
    ls.add_argument("--model")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="with data, candidate, gates, timings")
    ls.set_defaults(func=cmd_runs_list)
    show = runs_sub.add_parser("show", help="a run's timeline, trigger, gates and failure")
    show.add_argument("id", type=int)
    show.add_argument("--config")
    show.add_argument("--json", action="store_true", help="everything stored about the run")
    show.set_defaults(func=cmd_runs_show)
    cancel = runs_sub.add_parser("cancel", help="cancel an active run and its jobs")
    cancel.add_argument("id", type=int)
    cancel.add_argument("--config")
    cancel.add_argument("--reason", default="cancelled from the CLI")
    cancel.set_defaults(func=cmd_runs_cancel)
