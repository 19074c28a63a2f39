"""The ``driftwatch`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from consumers.errors import ConsumerError
from db.errors import StoreError
from drift.errors import DriftError
from retrain.errors import RetrainError
from service.cli.alerts import add_alerts_commands
from service.cli.archive import add_archive_commands
from service.cli.common import config_path, load, sessions_for
from service.cli.drift import add_drift_commands
from service.cli.retrain import add_retrain_commands
from service.cli.rollouts import add_rollouts_commands
from service.cli.tokens import add_api_commands
from service.config import load_config
from service.errors import ConfigError, ServiceError

if TYPE_CHECKING:
    from consumers.synthetic import EventSource, SyntheticPlan

log = logging.getLogger("driftwatch")
# As many rows as the demo's champion was validated on (its labels.reference.n).
REFERENCE_ROWS = 20_000


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.file)
    print(f"{args.file}: ok ({len(cfg.models)} model(s): {', '.join(cfg.models)})")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from db.migrate import current_revision, upgrade
    from db.session import make_engine

    cfg = load(args)
    engine = make_engine(cfg.database.url)
    upgrade(engine)
    print(f"database at revision {current_revision(engine)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from service.runner import run

    cfg = load(args)
    path = config_path(args)
    configure_logging(cfg.log_level, cfg.log_levels)
    log.info(
        "database %s, Kafka brokers %s, config %s",
        cfg.database.masked_url,
        ",".join(cfg.kafka.bootstrap_servers),
        path,
    )
    run(cfg, path)
    return 0


def cmd_windows(args: argparse.Namespace) -> int:
    from db.repositories import WindowAggregateRepository

    cfg = load(args)
    with sessions_for(cfg, args)() as session:
        rows = WindowAggregateRepository(session).window_counts(args.model)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "model": r.model,
                        "model_version": r.model_version,
                        "window_start": r.window_start.isoformat(),
                        "events": r.events,
                        "late": r.late,
                    }
                    for r in rows
                ]
            )
        )
        return 0
    print(f"{'model':<12} {'version':<8} {'window start (UTC)':<20} {'events':>9} {'late':>6}")
    for r in rows:
        start = r.window_start.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{r.model:<12} {r.model_version:<8} {start:<20} {r.events:>9} {r.late:>6}")
    print(f"{'total':<42} {sum(r.events for r in rows):>9} {sum(r.late for r in rows):>6}")
    return 0


def cmd_produce_demo(args: argparse.Namespace) -> int:
    from consumers.synthetic import SyntheticPlan, SyntheticStream, produce
    from service.durations import parse_duration
    from service.kafka_clients import make_producer

    cfg = load(args)
    specs = cfg.model_specs()
    models = args.model or list(specs)
    unknown = [m for m in models if m not in specs]
    if unknown:
        raise ConfigError([f"--model: {unknown} not in the config (have {list(specs)})"])
    drift_at = parse_duration(args.drift_at) if args.drift_at else None
    count = int(parse_duration(args.duration) * args.rate) if args.count is None else args.count
    span = count / args.rate
    if args.realtime and args.align:
        # Begin on a window boundary, so a drift point at a whole number of windows
        # starts a window of its own.
        width = specs[models[0]].window_seconds
        time.sleep(width - time.time() % width)
    # Simulated event time ends now, so no event is rejected as from the future.
    start = time.time() if args.realtime else (args.start if args.start else time.time() - span)
    plans = [
        SyntheticPlan(
            model=specs[m],
            model_version=args.model_version,
            rate=args.rate,
            start=start,
            drift_at=drift_at,
            seed=args.seed + i,
        )
        for i, m in enumerate(models)
    ]
    streams: list[EventSource] = [SyntheticStream(p) for p in plans]
    if args.scenario != "drift":
        try:
            from service.dev.concept import concept_streams
            from service.dev.scenarios import SCENARIOS
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("service.dev"):
                raise
            # service/dev/ is left out of the wheel: development tooling, not the service.
            raise ServiceError(
                f"--scenario {args.scenario}: the demo scenario (service.dev) comes with a "
                "checkout of driftwatch, not with the installed package"
            ) from exc
        streams = list(concept_streams(plans, args.champion, SCENARIOS[args.scenario]))
    if args.reference:
        _write_reference(Path(args.reference), plans, streams)
    producer = make_producer(cfg.kafka)
    try:
        report = produce(
            producer,
            streams,
            count,
            cfg.kafka.topics.predictions,
            None if args.no_labels else cfg.kafka.topics.labels,
            realtime=args.realtime,
            label_delay=parse_duration(args.label_delay) if args.label_delay else 0.0,
            seed=args.seed,
        )
    finally:
        producer.close(timeout=10)
    text = json.dumps(report.to_json(), indent=2)
    if args.report:
        Path(args.report).write_text(text, encoding="utf-8")
    print(
        f"sent {report.sent} prediction events and {report.labels} labels "
        f"in {len(report.windows)} window(s)"
    )
    return 0


def _write_reference(
    path: Path, plans: Sequence[SyntheticPlan], streams: Sequence[EventSource]
) -> None:
    """Undrifted rows of the one model's stream, as ``driftwatch reference build`` reads them.

    Other draws than the stream's from the same pre-drift distributions, scored by
    the same champion: what the model was validated on, not the events it is judged by.
    """
    from consumers.synthetic import SyntheticStream, write_reference_csv

    if len(plans) != 1:
        raise ServiceError("--reference writes one model's file: give one --model")
    plan, stream = plans[0], streams[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(stream, SyntheticStream):
        write_reference_csv(replace(plan, drift_at=None, draw_seed=1), REFERENCE_ROWS, path)
    else:
        from service.dev.concept import ConceptStream
        from service.dev.concept import write_reference_csv as write_concept_reference

        if not isinstance(stream, ConceptStream):
            raise ServiceError(f"--reference: no reference rows for a {type(stream).__name__}")
        write_concept_reference(
            path,
            stream.champion,
            plan.seed,
            REFERENCE_ROWS,
            stream.scenario,
            plan.model.prediction.kind,
        )
    print(f"reference rows of {plan.model.name}: {path}")


def configure_logging(level: str, levels: Mapping[str, str] | None = None) -> None:
    """The root level, quieter defaults for chatty libraries, then ``levels`` (the
    config's ``log_levels``) over both."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    quiet = max(logging.WARNING, logging.getLevelName(level))
    # kafka-python logs every reconnect attempt; its warnings are enough.
    logging.getLogger("kafka").setLevel(quiet)
    # APScheduler logs two lines per run of every job (evaluation runs every few
    # seconds); they are kept for DEBUG only.
    logging.getLogger("apscheduler").setLevel(logging.DEBUG if level == "DEBUG" else quiet)
    for name, chosen in (levels or {}).items():
        logging.getLogger(name).setLevel(chosen)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="driftwatch", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service (consumer, metrics)")
    run.add_argument("--config", help="YAML config (default: $DRIFTWATCH_CONFIG)")
    run.set_defaults(func=cmd_run)

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="migrate the database to this version's schema")
    up.add_argument("--config")
    up.set_defaults(func=cmd_db_upgrade)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    check.set_defaults(func=cmd_check_config)

    win = sub.add_parser("windows", help="print per-window event counts from SQL")
    win.add_argument("--config")
    win.add_argument("--model")
    win.add_argument("--json", action="store_true")
    win.set_defaults(func=cmd_windows)

    prod = sub.add_parser("produce-demo", help="produce synthetic events with a drift point")
    prod.add_argument("--config")
    prod.add_argument("--rate", type=float, default=100.0, help="events per second per model")
    prod.add_argument("--drift-at", help="event-time offset of the drift point, e.g. 30s")
    group = prod.add_mutually_exclusive_group()
    group.add_argument("--duration", default="60s", help="event-time span to produce")
    group.add_argument("--count", type=int, help="events per model")
    prod.add_argument("--realtime", action="store_true", help="pace to --rate, wall-clock times")
    prod.add_argument("--start", type=float, help="first event time (epoch seconds)")
    prod.add_argument(
        "--align", action="store_true", help="with --realtime, start on a window boundary"
    )
    prod.add_argument("--model", action="append", help="model to produce for (repeatable)")
    prod.add_argument("--model-version", default="v1")
    prod.add_argument("--seed", type=int, default=7)
    prod.add_argument("--no-labels", action="store_true")
    prod.add_argument(
        "--label-delay", help="labels come a random 0..this after their predictions, e.g. 5s"
    )
    prod.add_argument("--report", help="write what was sent, per window, as JSON")
    prod.add_argument(
        "--scenario",
        choices=("drift", "concept", "interaction"),
        default="drift",
        help="drift: features shift and labels stop following the score; "
        "concept: a real scikit-learn champion (linear) scores every event, the inputs shift "
        "and the concept changes; interaction: a gradient-boosting champion, the inputs stay, "
        "the new concept is an interaction of two features",
    )
    prod.add_argument(
        "--champion",
        help="with --scenario concept or interaction: the champion's skops file, trained there "
        "if absent (default: driftwatch-models/MODEL/champion.skops, or "
        "interaction-champion.skops)",
    )
    prod.add_argument(
        "--reference",
        metavar="FILE",
        help="also write pre-drift rows (features, prediction) as a CSV for "
        "driftwatch reference build (one model)",
    )
    prod.set_defaults(func=cmd_produce_demo)
    add_drift_commands(sub)
    add_retrain_commands(sub)
    add_archive_commands(sub)
    add_alerts_commands(sub)
    add_rollouts_commands(sub)
    add_api_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except (ServiceError, StoreError, ConsumerError, DriftError, RetrainError) as exc:
        print(f"driftwatch: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
