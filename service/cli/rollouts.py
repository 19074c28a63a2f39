"""``driftwatch rollouts``: list and show canary rollouts, start one, and pause, resume,
promote or abort an active one.

The operator commands go through the rollout driver, as the service's ``rollout`` job
does: each records its transition, and only that. The router call a transition asks
for is the one its new phase's handler makes on every tick, so the service's leader
makes it on its next tick, as it does for the HTTP API's commands: every router call
is the leader's, in the order of its ticks, and a late call from an operator's shell
can never put a canary back on traffic after the leader rolled it back.
Steps are shown counted from 1, as in the alerts; the records ``--json`` prints are
:mod:`service.rollout_records`' (the HTTP API's too).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from db.rollouts import RolloutAnalysisRow, RolloutPhaseRow, RolloutRepository, RolloutRow
from db.session import transaction
from retrain.rollout.driver import RolloutDriver
from retrain.rollout.lifecycle import Phase
from service.cli.common import load, require_model, sessions_for
from service.errors import ServiceError
from service.rollout_records import Versions, by_step, rollout_json, show_json, versions_of
from service.wiring.rollouts import build_rollouts, step_weights


def _time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def cmd_rollouts_list(args: argparse.Namespace) -> int:
    cfg = load(args)
    # No check of --model against the config: rollouts of a model since removed stay listed.
    with transaction(sessions_for(cfg, args)) as s:
        rows = RolloutRepository(s).rollouts(args.model, args.limit)
        versions = versions_of(s, rows)
        if args.json:
            print(json.dumps([rollout_json(r, versions[r.id]) for r in rows], indent=2))
            return 0
        print(
            f"{'id':>5} {'model':<12} {'phase':<12} {'step':>4} {'%':>4} {'stable':<12} "
            f"{'canary':<12} {'created (UTC)':<20} {'updated (UTC)':<20}"
        )
        for r in rows:
            v = versions[r.id]
            print(
                f"{r.id:>5} {r.model:<12} {r.phase:<12} {r.step + 1:>4} {r.canary_percent:>4} "
                f"{v.stable or '-':<12} {v.canary or '-':<12} {_time(r.created_at):<20} "
                f"{_time(r.updated_at):<20}"
            )
    return 0


def _rollout(session: Session, rollout_id: int) -> RolloutRow:
    rollout = RolloutRepository(session).get(rollout_id)
    if rollout is None:
        raise ServiceError(f"no rollout {rollout_id}")
    return rollout


def cmd_rollouts_show(args: argparse.Namespace) -> int:
    cfg = load(args)
    with transaction(sessions_for(cfg, args)) as s:
        r = _rollout(s, args.id)
        repository = RolloutRepository(s)
        versions = versions_of(s, [r])[r.id]
        history, analyses = repository.history(r.id), repository.analyses(r.id)
        if args.json:
            weights = step_weights(cfg, r.model)
            print(json.dumps(show_json(r, versions, history, analyses, weights), indent=2))
            return 0
        _print_rollout(r, versions, history, analyses)
    return 0


def _print_rollout(
    r: RolloutRow,
    versions: Versions,
    history: Sequence[RolloutPhaseRow],
    analyses: Sequence[RolloutAnalysisRow],
) -> None:
    """The rollout's state, phase history and every analysis, by step."""
    run = f" (run {r.run_id})" if r.run_id is not None else ""
    print(f"rollout {r.id} of {r.model}{run}: {r.phase}")
    print(f"  stable: {versions.stable or '-'}  canary: {versions.canary or '-'}")
    print(f"  step {r.step + 1} at {r.canary_percent}%, {r.failed_checks} failed check(s)")
    if r.reason:
        print(f"  reason: {r.reason}")
    if r.paused_from:
        print(f"  paused from: {r.paused_from}")
    print(f"  created {_time(r.created_at)}, updated {_time(r.updated_at)}")
    print("  history:")
    for p in history:
        print(f"    {_time(p.entered_at)}  {p.phase:<12} step {p.step + 1}  {p.note}")
    for step, rows in by_step(analyses).items():
        print(f"  step {step} analyses:")
        for a in rows:
            value = "-" if a.value is None else f"{a.value:.4g}"
            print(
                f"    {_time(a.analysed_at)}  {a.check:<26} {a.outcome:<12} value {value}  "
                f"threshold {a.threshold:.4g}  canary {a.n_canary} stable {a.n_stable}  "
                f"{a.reason}"
            )


def _driver(args: argparse.Namespace) -> RolloutDriver:
    cfg = load(args)
    return build_rollouts(cfg, sessions_for(cfg, args))


def cmd_rollouts_start(args: argparse.Namespace) -> int:
    cfg = load(args)
    require_model(cfg, args.model)
    rollout_id = build_rollouts(cfg, sessions_for(cfg, args)).start(args.model, args.run)
    print(f"rollout {rollout_id} of {args.model} started: {Phase.PENDING}")
    return 0


def cmd_rollouts_act(args: argparse.Namespace) -> int:
    """pause, resume, promote, abort: the driver's method of that name; the phase after."""
    driver = _driver(args)
    try:
        if args.action == "pause":
            phase = driver.pause(args.id, args.reason)
        elif args.action == "promote":
            phase = driver.promote(args.id, args.reason, act=False)
        elif args.action == "abort":
            phase = driver.abort(args.id, args.reason, act=False)
        else:
            phase = driver.resume(args.id, act=False)
    except LookupError as exc:
        raise ServiceError(str(exc)) from exc
    later = "" if args.action == "pause" else " (the service's next rollout tick applies it)"
    print(f"rollout {args.id}: {phase}{later}")
    return 0


# Each operator command: its help, and its default reason (None: it takes none).
ACTIONS: dict[str, tuple[str, str | None]] = {
    "pause": ("pause an active rollout where it is", "paused from the CLI"),
    "resume": ("resume a paused rollout where it paused", None),
    "promote": ("promote a progressing or paused rollout now", "promoted from the CLI"),
    "abort": ("roll an active rollout back", "aborted from the CLI"),
}


def add_rollouts_commands(sub: Any) -> None:
    rollouts = sub.add_parser("rollouts", help="canary rollouts of accepted candidates")
    rollouts_sub = rollouts.add_subparsers(dest="rollouts_command", required=True)
    ls = rollouts_sub.add_parser("list", help="the newest rollouts")
    ls.add_argument("--config")
    ls.add_argument("--model")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_rollouts_list)
    show = rollouts_sub.add_parser("show", help="a rollout's history and analyses")
    show.add_argument("id", type=int)
    show.add_argument("--config")
    show.add_argument("--json", action="store_true", help="everything stored about it")
    show.set_defaults(func=cmd_rollouts_show)
    start = rollouts_sub.add_parser(
        "start", help="start the rollout of an accepted run's candidate"
    )
    start.add_argument("--config")
    start.add_argument("--model", required=True)
    start.add_argument("--run", type=int, required=True, help="the accepted run's id")
    start.set_defaults(func=cmd_rollouts_start)
    for action, (help_text, reason) in ACTIONS.items():
        cmd = rollouts_sub.add_parser(action, help=help_text)
        cmd.add_argument("id", type=int)
        cmd.add_argument("--config")
        if reason is not None:
            cmd.add_argument("--reason", default=reason)
        cmd.set_defaults(func=cmd_rollouts_act, action=action)
