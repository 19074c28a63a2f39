"""``driftwatch retrain``, ``driftwatch runs`` and ``driftwatch models``: the retraining
loop and the model registry from the command line."""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.registry import ModelVersionRow, RegistryRepository, Stage
from db.runs import RetrainRunRow, RunRepository
from db.session import transaction
from db.triggers import DecisionRepository
from retrain.lifecycle import Phase
from service.cli.common import load, require_model, sessions_for
from service.errors import ServiceError
from service.wiring.retraining import absolute_uri, build_retraining, utc_now


def cmd_retrain(args: argparse.Namespace) -> int:
    cfg = load(args)
    require_model(cfg, args.model)
    sessions = sessions_for(cfg, args)
    retraining = build_retraining(cfg, sessions)
    decision = retraining.policy.request(args.model, args.reason or "requested from the CLI")
    if not decision.fired or decision.run_id is None:
        print(f"{args.model}: {decision.reason}; nothing started")
        with transaction(sessions) as s:
            active = [r.id for r in RunRepository(s).active(args.model)]
        for run_id in active:
            print_run(sessions, run_id)
        return 1
    print(f"run {decision.run_id} of {args.model} started ({decision.reason})")
    if not args.wait:
        print("the service advances it; follow it with: driftwatch runs show", decision.run_id)
        return 0
    # Drives the run in this process, so it finishes with no service running; a
    # running service may step it too: each step holds the run's row, and every
    # action is idempotent.
    last = Phase.PENDING
    while True:
        phase = retraining.driver.step(decision.run_id)
        if phase is not last:
            print(f"  {utc_now().strftime('%H:%M:%S')} {phase}", flush=True)
            last = phase
        if phase.final:
            break
        time.sleep(cfg.retrain.tick)
    print_run(sessions, decision.run_id)
    return 0 if phase is Phase.ACCEPTED else 1


def cmd_runs_list(args: argparse.Namespace) -> int:
    cfg = load(args)
    with transaction(sessions_for(cfg, args)) as s:
        rows = RunRepository(s).runs(args.model, args.limit)
        if args.json:
            print(json.dumps([_run_json(r) for r in rows], indent=2))
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
    return print_run(sessions_for(cfg, args), args.id)


def cmd_runs_cancel(args: argparse.Namespace) -> int:
    cfg = load(args)
    retraining = build_retraining(cfg, sessions_for(cfg, args))
    try:
        phase = retraining.driver.cancel(args.id, args.reason)
    except LookupError as exc:
        raise ServiceError(str(exc)) from exc
    print(f"run {args.id}: {phase}")
    return 0


def print_run(sessions: sessionmaker[Session], run_id: int) -> int:
    """The run's timeline, its trigger, its gates and, if it failed, why."""
    with transaction(sessions) as s:
        runs = RunRepository(s)
        run = runs.get(run_id)
        if run is None:
            raise ServiceError(f"no run {run_id}")
        print(
            f"run {run.id} of {run.model}: {run.phase}"
            + (f" ({run.verdict})" if run.verdict else "")
        )
        print(f"  data: {run.data_from.isoformat()} .. {run.data_to.isoformat()}", end="")
        print(f", {run.data_rows} rows in {run.data_uri}" if run.data_uri else "")
        decision = DecisionRepository(s).for_run(run.id)
        if decision is not None:
            evidence = ", ".join(f"{k} {v}" for k, v in sorted(decision.evidence_ids.items()))
            print(f"  trigger: {decision.cause_kind} {decision.cause_key}: {decision.reason}")
            if evidence:
                print(f"  evidence: {evidence}")
        _print_versions(RegistryRepository(s), run)
        print("  timeline:")
        for p in runs.history(run.id):
            print(f"    {p.entered_at.strftime('%Y-%m-%d %H:%M:%S')}  {p.phase:<10} {p.note}")
        gates = runs.gates(run.id)
        if gates:
            print("  gates:")
        for g in gates:
            what = (g.metric or "holdout rows") + (f" [{g.slice}]" if g.slice else "")
            print(
                f"    {'pass' if g.passed else 'FAIL'}  {g.gate:<22} {what:<24} champion "
                f"{_num(g.champion_value)}  candidate {_num(g.candidate_value)}  "
                f"threshold {g.threshold:g}"
            )
        if run.failure_reason:
            print(f"  failure: {run.failure_reason}")
            tail = run.validate_log_tail or run.train_log_tail
            if tail:
                print(
                    "  log tail:\n" + "\n".join(f"    {line}" for line in tail.splitlines()[-20:])
                )
    return 0


def _print_versions(registry: RegistryRepository, run: RetrainRunRow) -> None:
    for label, version_id in (
        ("champion", run.champion_version_id),
        ("candidate", run.candidate_version_id),
    ):
        version = registry.by_id(version_id) if version_id is not None else None
        if version is not None:
            print(f"  {label}: {version.version} ({version.stage}) {version.uri}")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _run_json(r: RetrainRunRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "model": r.model,
        "phase": r.phase,
        "trigger": r.trigger,
        "reason": r.reason,
        "verdict": r.verdict,
        "failure_reason": r.failure_reason,
        "created_at": r.created_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
    }


def sha256_of(uri: str) -> str:
    """The sha256 of the artifact's bytes, read through fsspec (any URI it knows)."""
    import fsspec

    digest = hashlib.sha256()
    try:
        with fsspec.open(uri, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except (OSError, ValueError) as exc:
        raise ServiceError(f"--uri: cannot read {uri}: {exc}") from exc
    return digest.hexdigest()


def cmd_models_register(args: argparse.Namespace) -> int:
    cfg = load(args)
    require_model(cfg, args.model)
    uri = absolute_uri(args.uri)
    sha256 = args.sha256 or sha256_of(uri)
    with transaction(sessions_for(cfg, args)) as s:
        registry = RegistryRepository(s)
        stage = Stage(args.stage) if args.stage else None
        if stage is None:
            # The first version of a model is the one serving: the champion.
            stage = Stage.CANDIDATE if registry.production(args.model) else Stage.PRODUCTION
        row = registry.register(args.model, args.version, uri, sha256, stage, utc_now())
        print(f"{row.model} {row.version}: {row.stage}, sha256 {row.sha256}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    cfg = load(args)
    with transaction(sessions_for(cfg, args)) as s:
        rows = RegistryRepository(s).versions(args.model)
        print(f"{'model':<12} {'version':<14} {'stage':<11} {'run':>5}  {'sha256':<14} uri")
        for v in rows:
            run = "" if v.run_id is None else str(v.run_id)
            print(
                f"{v.model:<12} {v.version:<14} {v.stage:<11} {run:>5}  {v.sha256[:12]:<14} {v.uri}"
            )
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    cfg = load(args)
    require_model(cfg, args.model)
    with transaction(sessions_for(cfg, args)) as s:
        rows = RegistryRepository(s).versions(args.model)
        if not rows:
            print(
                f"{args.model}: no version registered; register the serving model with "
                f"driftwatch models register --model {args.model} --version V --uri URI"
            )
            return 1
        for v in rows:
            _print_version(v)
    return 0


def _print_version(v: ModelVersionRow) -> None:
    print(f"{v.model} {v.version}: {v.stage}")
    print(f"  uri: {v.uri}\n  sha256: {v.sha256}")
    if v.run_id is not None:
        span = f"{_iso(v.data_from)} .. {_iso(v.data_to)}"
        print(f"  run: {v.run_id}, data {span}")
    metrics = ", ".join(f"{k} {val}" for k, val in sorted(v.metric_values.items()))
    if metrics:
        print(f"  metrics: {metrics}")
    print(f"  registered: {v.created_at.isoformat()}, updated {v.updated_at.isoformat()}")


def _iso(value: Any) -> str:
    return "?" if value is None else str(value.isoformat())


def add_retrain_commands(sub: Any) -> None:
    r = sub.add_parser("retrain", help="start a retraining run now (manual trigger)")
    r.add_argument("--config")
    r.add_argument("--model", required=True)
    r.add_argument("--reason", help="why, stored with the run")
    r.add_argument("--wait", action="store_true", help="drive the run here until its verdict")
    r.set_defaults(func=cmd_retrain)

    runs = sub.add_parser("runs", help="retraining runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True)
    ls = runs_sub.add_parser("list", help="the newest runs")
    ls.add_argument("--config")
    ls.add_argument("--model")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs_list)
    show = runs_sub.add_parser("show", help="a run's timeline, trigger, gates and failure")
    show.add_argument("id", type=int)
    show.add_argument("--config")
    show.set_defaults(func=cmd_runs_show)
    cancel = runs_sub.add_parser("cancel", help="cancel an active run and its jobs")
    cancel.add_argument("id", type=int)
    cancel.add_argument("--config")
    cancel.add_argument("--reason", default="cancelled from the CLI")
    cancel.set_defaults(func=cmd_runs_cancel)

    models = sub.add_parser("models", help="the model registry")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    reg = models_sub.add_parser("register", help="register a model version (first: production)")
    reg.add_argument("--config")
    reg.add_argument("--model", required=True)
    reg.add_argument("--version", required=True)
    reg.add_argument("--uri", required=True, help="the artifact, any fsspec URI")
    reg.add_argument("--sha256", help="of the artifact's bytes (computed when not given)")
    reg.add_argument("--stage", choices=[str(s) for s in Stage])
    reg.set_defaults(func=cmd_models_register)
    mls = models_sub.add_parser("list", help="every registered version")
    mls.add_argument("--config")
    mls.add_argument("--model")
    mls.set_defaults(func=cmd_models_list)
    mshow = models_sub.add_parser("show", help="a model's versions in detail")
    mshow.add_argument("model")
    mshow.add_argument("--config")
    mshow.set_defaults(func=cmd_models_show)
