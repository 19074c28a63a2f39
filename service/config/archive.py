"""The ``archive`` section and ``models.*.archive``: where labeled events are kept, how long."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import Field, ValidationInfo, field_validator, model_validator

from db.archive import ARRIVED_LATE, ArchiveSettings
from retrain.storage import is_remote, is_s3
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
        ARRIVED_LATE,
    }
)


# object_store reads an option under its name with or without ``aws_``, in any case.
_SECRET_OPTIONS = frozenset({"secret_access_key", "session_token", "token"})
_ENV_UNSAFE = "AWS_S3_ALLOW_UNSAFE_RENAME"


def _bare(key: str) -> str:
    key = key.lower()
    return key[4:] if key.startswith("aws_") else key


def _find(options: Mapping[str, str], bare: str) -> str | None:
    found = [k for k in options if _bare(k) == bare]
    return found[0] if found else None


def check_s3_options(options: Mapping[str, str]) -> None:
    """Refuse what would let two replicas' commits to one table on S3 overwrite each
    other, and credentials written into the config file.

    Delta commits version N by creating ``_delta_log/N.json``; on S3 only a conditional
    put (``If-None-Match: *``, which deltalake 1.x sends with ``conditional_put: etag``)
    makes that creation exclusive. The unsafe-rename switch turns it into an overwrite;
    the DynamoDB locking provider is gone from deltalake 1.x.
    """
    unsafe = _find(options, "s3_allow_unsafe_rename")
    if unsafe is not None:
        raise ValueError(
            f"{unsafe}: concurrent commits would overwrite each other; leave it out "
            "(commits use S3 conditional writes)"
        )
    provider = _find(options, "s3_locking_provider")
    if provider is not None:
        raise ValueError(
            f"{provider}: deltalake 1.x has no locking provider; S3 "
            "conditional writes (conditional_put: etag) make commits safe without one"
        )
    put = _find(options, "conditional_put")
    if put is not None and options[put].strip().lower() != "etag":
        raise ValueError(
            f"{put}: expected etag (S3 If-None-Match on commits), got {options[put]!r}"
        )
    for key in options:
        if _bare(key) in _SECRET_OPTIONS:
            raise ValueError(
                f"{key}: credentials stay out of the config file; set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment instead"
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
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="deltalake/object_store options (endpoint, region, conditional_put); "
        "credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
    )
    compact_interval: Duration = Field(
        default=3600.0, gt=0, description="how often retention and compaction run, e.g. 1h"
    )
    compact_every: int = Field(
        default=50,
        ge=1,
        description="appends a replica makes to a table before it compacts the table's files",
    )
    log_retention: Duration = Field(
        default=600.0,
        ge=60,
        description="how long a table's Delta log keeps an entry a checkpoint covers, e.g. 10m "
        "(time travel reaches no further back; every entry kept slows each append)",
    )
    append_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="tables a flush appends to at once (one per archived model and kind); "
        "default 1 on a local disk, where appends are CPU-bound and more only contend for "
        "the interpreter, and 8 on object storage, where each commit waits on requests",
    )

    @field_validator("uri")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return v.rstrip("/") or v

    @field_validator("storage_options")
    @classmethod
    def _safe_on_object_storage(cls, v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if is_s3(info.data.get("uri", "")):
            check_s3_options(v)
        return v

    @model_validator(mode="after")
    def _no_unsafe_environment(self) -> ArchiveConfig:
        unsafe = os.environ.get(_ENV_UNSAFE, "").strip().lower()
        if is_s3(self.uri) and unsafe not in {"", "false", "0"}:
            raise ValueError(
                f"${_ENV_UNSAFE} is set: concurrent commits to the archive would overwrite "
                "each other; unset it (commits use S3 conditional writes)"
            )
        return self

    def settings(self) -> ArchiveSettings:
        options = dict(self.storage_options)
        if is_s3(self.uri) and not _find(options, "conditional_put"):
            # deltalake 1.x sends If-None-Match on S3 commits by default; stated here so
            # that a change of that default cannot make two replicas' commits unsafe.
            options["conditional_put"] = "etag"
        return ArchiveSettings(
            uri=self.uri,
            retention_seconds=self.retention,
            storage_options=options,
            compact_every=self.compact_every,
            log_retention_seconds=self.log_retention,
            append_workers=self.append_workers or (8 if is_remote(self.uri) else 1),
        )


class ModelArchiveConfig(Strict):
    enabled: bool = True
