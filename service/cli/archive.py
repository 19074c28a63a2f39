"""The ``driftwatch archive`` commands (the archive's writer and maintenance job are built in
:mod:`service.wiring.monitoring`)."""

from __future__ import annotations

import argparse
from typing import Any

from db.archive import export_labeled
from service.cli.common import load, require_model
from service.errors import ServiceError


def cmd_archive_export(args: argparse.Namespace) -> int:
    from service.monitoring.reference import parse_instant

    cfg = load(args)
    require_model(cfg, args.model)
    start = parse_instant(args.start) if args.start else None
    end = parse_instant(args.end) if args.end else None
    if start is not None and end is not None and end <= start:
        raise ServiceError("--to must be after --from")
    spec = cfg.model_specs()[args.model]
    done = export_labeled(cfg.archive.settings(), spec, start, end, args.output)
    span = ""
    if done.first_event_time is not None and done.last_event_time is not None:
        span = f", event times {done.first_event_time.isoformat()} .. "
        span += done.last_event_time.isoformat()
    print(f"exported {done.rows} labeled rows of model {args.model} to {args.output}{span}")
    return 0


def add_archive_commands(sub: Any) -> None:
    arc = sub.add_parser("archive", help="the labeled-event archive")
    arc_sub = arc.add_subparsers(dest="archive_command", required=True)
    exp = arc_sub.add_parser("export", help="write a model's joined labeled rows as Parquet")
    exp.add_argument("--config")
    exp.add_argument("--model", required=True)
    exp.add_argument("--from", dest="start", help="first event time (ISO 8601 or epoch seconds)")
    exp.add_argument("--to", dest="end", help="end of event times, exclusive")
    exp.add_argument("-o", "--output", required=True, help="a Parquet file path or URI")
    exp.set_defaults(func=cmd_archive_export)
