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
    """

    uri: str = "./driftwatch-archive"
    retention_seconds: float = 90 * 86400.0
    storage_options: Mapping[str, str] = field(default_factory=dict)
    vacuum_grace_seconds: float = 86400.0
    compact_every: int = 100

    def table_uri(self, model: str, kind: Kind) -> str:
        return f"{self.uri.rstrip('/')}/{model}/{kind.value}"
