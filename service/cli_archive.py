"""The archive's wiring: the ingestion loop's writer, the maintenance job, the export command."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from consumers.archive import ArchiveIntake, NoArchive
from db.archive import ArchiveWriter, export_labeled, maintain
from service.cli_common import load, require_model
from service.config import Config
from service.errors import ServiceError

log = logging.getLogger(__name__)


def archived_models(cfg: Config) -> list[str]:
    return [name for name, m in cfg.models.items() if m.archive.enabled]


def build_archive(cfg: Config, compaction_failed: Callable[[], None]) -> ArchiveIntake:
    """What the ingestion loop archives through; a no-op when no model is archived."""
    models = archived_models(cfg)
    if not models:
        return NoArchive()
    writer = ArchiveWriter(cfg.archive.settings(), cfg.kafka.group_id, compaction_failed)
    return ArchiveIntake(writer, models)


def archive_maintenance(cfg: Config) -> Callable[[], None] | None:
    """Retention, compaction and vacuum of the archive tables; None when nothing is archived.

    The scheduler runs it on the leader only (every ``archive.compact_interval``).
    Each step commits through the Delta log, so two replicas would not corrupt a
    table; but both would rewrite the same files and all but one commit would
    lose the race and be thrown away, so one replica does it. A failure
    (:class:`ArchiveError`) is retried at the next run.
    """
    models = archived_models(cfg)
    if not models:
        return None
    settings = cfg.archive.settings()

    def tick() -> None:
        done = maintain(settings, models, datetime.now(UTC))
        log.info(
            "archive maintenance: %d rows past retention deleted, %d files compacted, %d vacuumed",
            done.deleted_rows,
            done.compacted_files,
            done.vacuumed_files,
        )

    return tick


def cmd_archive_export(args: argparse.Namespace) -> int:
    from service.reference import parse_instant

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
