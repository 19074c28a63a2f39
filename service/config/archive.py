"""The ``archive`` section and ``models.*.archive``: where labeled events are kept, how long."""

from __future__ import annotations

from pydantic import Field, field_validator

from db.archive import ArchiveSettings
from service.config.base import Duration, Strict

# Columns every archive table and the export carry; a feature by one of these names
# would overwrite them (the export puts features beside them, by name).
RESERVED_COLUMNS = frozenset(
    {
        "event_id",
        "model_version",
        "event_time",
        "date",
        "prediction",
        "label",
        "label_time",
        "topic",
        "partition",
        "offset",
    }
)


class ArchiveConfig(Strict):
    uri: str = Field(
        default="./driftwatch-archive",
        min_length=1,
        description="a directory or a Delta/fsspec URI such as s3://bucket/archive",
    )
    retention: Duration = Field(
        default=90 * 86400.0, gt=0, description="how long event dates are kept, e.g. 90d"
    )
    storage_options: dict[str, str] = {}
    compact_interval: Duration = Field(
        default=3600.0, gt=0, description="how often retention and compaction run, e.g. 1h"
    )
    compact_every: int = Field(
        default=100,
        ge=1,
        description="appends a replica makes to a table before it compacts the table's files",
    )

    @field_validator("uri")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return v.rstrip("/") or v

    def settings(self) -> ArchiveSettings:
        return ArchiveSettings(
            uri=self.uri,
            retention_seconds=self.retention,
            storage_options=dict(self.storage_options),
            compact_every=self.compact_every,
        )


class ModelArchiveConfig(Strict):
    enabled: bool = True
