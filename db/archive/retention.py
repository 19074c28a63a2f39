"""Retention and compaction of the archive tables (a scheduled job of ``driftwatch run``).

Every flush appends a small file per table and date; compaction rewrites them
into large ones. Dates older than the retention are deleted, and vacuum then
removes the files no version within the grace period still references. Both
commit through the Delta log, so readers and the ingestion loop's appends go on
meanwhile; app transaction versions survive both (they live in the log, and
each checkpoint carries the latest of every app id).

Every flush also adds an entry to each table's log, and appends slow down with
the entries kept: the job gives tables created before their log retention was
set (``ArchiveSettings.table_properties``) that retention, then checkpoints
each table and deletes its expired entries, which covers tables no flush
writes to any more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from db.archive.errors import ArchiveError, translate
from db.archive.settings import ArchiveSettings, Kind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintenanceSummary:
    tables: int = 0
    deleted_rows: int = 0
    compacted_files: int = 0
    vacuumed_files: int = 0


def maintain(settings: ArchiveSettings, models: Iterable[str], now: datetime) -> MaintenanceSummary:
    """Apply retention, compact and vacuum each model's tables; ``now`` is timezone-aware.

    A table that fails (a log that does not parse, a store refusing a request) holds
    back no other: each table is maintained, then the first failure is raised (the
    others are logged), so one damaged table cannot stop retention everywhere else.
    """
    cutoff = (now - timedelta(seconds=settings.retention_seconds)).date()
    total = MaintenanceSummary()
    first: ArchiveError | None = None
    for model in sorted(set(models)):
        for kind in Kind:
            try:
                done = _maintain_table(settings, settings.table_uri(model, kind), cutoff)
            except ArchiveError as exc:
                if first is not None:
                    log.warning("archive maintenance failed too: %s", exc)
                first = first or exc
                continue
            if done is not None:
                total = MaintenanceSummary(
                    total.tables + 1,
                    total.deleted_rows + done.deleted_rows,
                    total.compacted_files + done.compacted_files,
                    total.vacuumed_files + done.vacuumed_files,
                )
    if first is not None:
        raise first
    return total


def _maintain_table(settings: ArchiveSettings, uri: str, cutoff: date) -> MaintenanceSummary | None:
    """One table's retention, compaction, vacuum and log trim; None when it does not exist."""
    try:
        table = DeltaTable(uri, storage_options=dict(settings.storage_options) or None)
    except TableNotFoundError:
        return None
    except Exception as exc:
        raise translate(exc, f"opening {uri}") from exc
    try:
        deleted = table.delete(f"date < '{cutoff.isoformat()}'")
        compacted = table.optimize.compact()
        vacuumed = table.vacuum(
            retention_hours=int(settings.vacuum_grace_seconds // 3600),
            enforce_retention_duration=False,
            dry_run=False,
        )
        _trim_log(table, settings.table_properties())
    except Exception as exc:
        raise translate(exc, f"maintaining {uri}") from exc
    return MaintenanceSummary(
        1,
        int(deleted.get("num_deleted_rows", 0) or 0),
        int(compacted.get("numFilesRemoved", 0) or 0),
        len(vacuumed),
    )


def _trim_log(table: DeltaTable, properties: dict[str, str]) -> None:
    """Give ``table`` the archive's properties if it lacks them, checkpoint it and delete
    its log entries older than the log retention."""
    configured = table.metadata().configuration
    if any(configured.get(k) != v for k, v in properties.items()):
        table.alter.set_table_properties(properties)
    table.create_checkpoint()
    table.cleanup_metadata()
