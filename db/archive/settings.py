"""Where the archive lives and how long it keeps events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    PREDICTIONS = "predictions"
    LABELS = "labels"


@dataclass(frozen=True)
class ArchiveSettings:
    """``uri`` is a directory path or a Delta/fsspec URI; tables are ``{uri}/{model}/{kind}``.

    ``vacuum_grace_seconds`` is how long a file no longer referenced by the log
    is kept before vacuum deletes it: an append of another writer in flight has
    written its files but not yet committed them, and a reader may still be
    scanning an older snapshot.

    ``log_retention_seconds`` is how long a table's Delta log keeps a commit's
    entry once a checkpoint covers it. An append's cost grows with the entries
    kept (about 7 µs each, measured on a local disk): under
    Delta's default of 30 days, a flush every 2 seconds would keep 1.3 million.

    ``append_workers`` is how many of a flush's tables (one per archived model
    and kind) are appended to at once.

    ``compact_target_bytes`` is the file size a writer's own compactions (every
    ``compact_every`` appends, on its compaction thread) bin-pack small files up to.
    Delta's default, 100 MB, made each of them rewrite the day's growing file with
    the new small ones: at 2,000 twenty-feature events a flush, up to 1.37 s on a
    local disk, when they still ran inside the flush, against at most 0.37 s at 16
    MiB, and twice the Parquet bytes written (bench/archive_compaction.py). The
    maintenance job compacts with Delta's default.
    """

    uri: str = "./driftwatch-archive"
    retention_seconds: float = 90 * 86400.0
    storage_options: Mapping[str, str] = field(default_factory=dict)
    vacuum_grace_seconds: float = 86400.0
    compact_every: int = 50
    log_retention_seconds: float = 600.0
    append_workers: int = 1
    compact_target_bytes: int = 16 * 1024 * 1024

    def table_properties(self) -> dict[str, str]:
        """The Delta table properties every archive table carries.

        Log entries expire after ``log_retention_seconds``; those before the last
        checkpoint (one every 100 commits) are deleted by each writer's compactions
        and by the maintenance job (db.archive.writer). Removed files are forgotten
        by checkpoints once vacuum may delete them, so checkpoints do not grow with
        every compaction of the last week (Delta's default).
        """
        return {
            "delta.logRetentionDuration": f"interval {int(self.log_retention_seconds)} seconds",
            "delta.deletedFileRetentionDuration": (
                f"interval {int(self.vacuum_grace_seconds)} seconds"
            ),
        }

    def table_uri(self, model: str, kind: Kind) -> str:
        return f"{self.uri.rstrip('/')}/{model}/{kind.value}"
