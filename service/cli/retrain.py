"""``driftwatch retrain`` and ``driftwatch models``: the retraining loop and the model
registry from the command line (``driftwatch runs`` is :mod:`service.cli.runs`)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

from db.registry import ModelVersionRow, RegistryRepository, Stage
from db.rollouts import RolloutRepository
from db.runs import RunRepository
from db.session import transaction
from retrain.lifecycle import Phase
from service.cli.common import load, require_model, sessions_for
from service.cli.runs import add_runs_commands, print_run
from service.errors import ServiceError
from service.wiring.retraining import absolute_uri, build_retraining, utc_now
from service.wiring.rollouts import rollouts_for


def cmd_retrain(args: argparse.Namespace) -> int:
    cfg = load(args)
    require_model(cfg, args.model)
    sessions = sessions_for(cfg, args)
    # A run this process drives to its verdict starts its rollout as the service's would
    # (models.<name>.rollout.enabled), in the verdict's transaction.
    rollouts = rollouts_for(cfg, sessions)
    retraining = build_retraining(cfg, sessions, on_accepted=rollouts.on_accepted)
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
    with transaction(sessions) as s:
        going = RolloutRepository(s).active(args.model)
        started = [r.id for r in going if r.run_id == decision.run_id]
    for rollout_id in started:
        print(
            f"rollout {rollout_id} of {args.model} started; the service's rollout job carries "
            f"it out: driftwatch rollouts show {rollout_id}"
        )
    return 0 if phase is Phase.ACCEPTED else 1


def read_bytes(uri: str) -> bytes:
    """The artifact's bytes, read through fsspec (any URI it knows)."""
    import fsspec

    try:
        with fsspec.open(uri, "rb") as f:
            data: bytes = f.read()
    except (OSError, ValueError) as exc:
        raise ServiceError(f"--uri: cannot read {uri}: {exc}") from exc
    return data


def checked_artifact(uri: str, sha256: str | None, model: str, trusted: Sequence[str]) -> str:
    """The sha256 of the artifact at ``uri`` once every job could load it: it names only
    types trusted by default or by ``models.<model>.retrain.trusted_types``, and it loads.

    Checked here, so that a champion no job can load is refused when it is registered,
    not at the validation of a run much later.
    """
    from retrain.artifacts import TRUSTED_TYPES, artifact_types, load_bytes, sha256_hex
    from retrain.errors import ArtifactError

    data = read_bytes(uri)
    digest = sha256_hex(data)
    if sha256 is not None and sha256.lower() != digest:
        raise ServiceError(f"--sha256: {sha256} is not the sha256 of {uri} ({digest})")
    try:
        missing = sorted(artifact_types(data) - TRUSTED_TYPES - set(trusted))
        if missing:
            raise ServiceError(
                f"{uri} names {len(missing)} types that jobs do not trust: "
                f"{', '.join(missing)}; if you trust them, list them in "
                f"models.{model}.retrain.trusted_types and register again"
            )
        load_bytes(data, uri, trusted)
    except ArtifactError as exc:
        raise ServiceError(f"--uri: refused: {exc}") from exc
    return digest


def cmd_models_register(args: argparse.Namespace) -> int:
    cfg = load(args)
    require_model(cfg, args.model)
    uri = absolute_uri(args.uri)
    trusted = cfg.models[args.model].retrain.trusted_types
    sha256 = checked_artifact(uri, args.sha256, args.model, trusted)
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

    add_runs_commands(sub)

    models = sub.add_parser("models", help="the model registry")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    reg = models_sub.add_parser(
        "register",
        help="register a model version (first: production) once it loads with the model's "
        "trusted types",
    )
    reg.add_argument("--config")
    reg.add_argument("--model", required=True)
    reg.add_argument("--version", required=True)
    reg.add_argument("--uri", required=True, help="the artifact, any fsspec URI")
    reg.add_argument("--sha256", help="of the artifact's bytes (checked; computed when not given)")
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
