"""The export's joined rows, and retention and compaction of the tables."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from db.archive import (
    ARRIVED_LATE,
    ArchiveError,
    ArchiveSettings,
    ArchiveWriter,
    Kind,
    export_labeled,
    maintain,
    prediction_table,
)
from db.archive.late import read_predictions
from db.archive.tables import label_table
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec

SPEC = ModelSpec(
    name="fraud",
    features=(
        FeatureSpec("amount", FeatureKind.NUMERICAL, True, ()),
        FeatureSpec("country", FeatureKind.CATEGORICAL, False, ()),
    ),
    prediction=PredictionSpec(PredictionKind.NUMERICAL, ()),
    window_seconds=60,
)
DAY0 = datetime(2026, 11, 20, tzinfo=UTC)


def write_predictions(writer: ArchiveWriter, ids: list[str], days: list[float], first: int) -> None:
    n = len(ids)
    offsets = np.arange(first, first + n, dtype=np.int64)
    rows = prediction_table(
        SPEC,
        ids,
        ["v1"] * n,
        [DAY0.timestamp() + d * 86400 for d in days],
        {
            "amount": [float(i) if i % 3 else None for i in range(n)],
            "country": ["DE", 7] * (n // 2),
        },
        [0.25 * (i % 4) for i in range(n)],
        "p",
        np.zeros(n, np.int32),
        offsets,
    )
    writer.append("fraud", Kind.PREDICTIONS, rows, {("p", 0): first + n})


def write_labels(writer: ArchiveWriter, ids: list[str], values: list[object], first: int) -> None:
    n = len(ids)
    rows = label_table(
        ids,
        values,  # type: ignore[arg-type]
        [DAY0.timestamp() + 5 * 86400 + i for i in range(n)],
        "l",
        np.zeros(n, np.int32),
        np.arange(first, first + n, dtype=np.int64),
    )
    writer.append("fraud", Kind.LABELS, rows, {("l", 0): first + n})


def test_export_joins_each_labeled_prediction_once_in_the_contract_columns(tmp_path: Path):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"))
    writer = ArchiveWriter(settings, "g")
    write_predictions(writer, ["a", "b", "c", "d"], [0, 1, 2, 3], first=0)
    # "b" labeled twice (the first wins), "d" never, "z" has no prediction.
    write_labels(writer, ["b", "a", "b", "z", "c"], ["1", 0, True, 1, 1.5], first=0)
    dest = tmp_path / "out" / "rows.parquet"
    done = export_labeled(settings, SPEC, DAY0 + timedelta(hours=1), None, str(dest))
    table = pq.read_table(dest)
    assert table.column_names == [
        "event_id", "model_version", "event_time", "prediction", "label", "label_time",
        "amount", "country",
    ]  # fmt: skip
    assert str(table.schema.field("event_time").type) == "timestamp[us, tz=UTC]"
    frame = table.to_pandas()
    assert frame["event_id"].tolist() == ["b", "c"]
    assert frame["label"].tolist() == ["1", "1.5"]
    assert frame["country"].tolist() == ["7", "DE"]
    assert frame["prediction"].tolist() == [0.25, 0.5]
    assert (done.rows, done.first_event_time, done.last_event_time) == (
        2,
        DAY0 + timedelta(days=1),
        DAY0 + timedelta(days=2),
    )
    # Without bounds: every labeled prediction; the JSON scalar of true is "true".
    export_labeled(settings, SPEC, None, DAY0 + timedelta(days=2), str(dest))
    assert pd.read_parquet(dest)["label"].tolist() == ["0", "1"]


def test_predictions_archived_before_the_late_flag_existed_read_as_on_time(tmp_path: Path):
    writer = ArchiveWriter(ArchiveSettings(uri=str(tmp_path / "archive")), "g")
    rows = prediction_table(
        SPEC, ["old"], ["v1"], [DAY0.timestamp()], {"amount": [1.0], "country": ["DE"]},
        [0.5], "p", np.zeros(1, np.int32), np.zeros(1, np.int64),
    ).drop_columns([ARRIVED_LATE])  # fmt: skip
    writer.append("fraud", Kind.PREDICTIONS, rows, {("p", 0): 1})
    settings = writer.settings

    def read() -> dict[str, bool]:
        got = read_predictions(settings, "fraud", 0, ["old", "new"], 0.0, 4e9)
        return {e: p.arrived_late for e, p in got.items()}

    assert read() == {"old": False}  # the table has no such column yet
    rows = prediction_table(
        SPEC, ["new"], ["v1"], [DAY0.timestamp()], {"amount": [2.0], "country": ["DE"]},
        [0.5], "p", np.zeros(1, np.int32), np.ones(1, np.int64), np.ones(1, np.bool_),
    )  # fmt: skip
    writer.append("fraud", Kind.PREDICTIONS, rows, {("p", 0): 2})  # the schema grows
    assert read() == {"old": False, "new": True}


def test_export_of_a_model_never_archived_is_an_empty_file_with_the_columns(tmp_path: Path):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"))
    done = export_labeled(settings, SPEC, None, None, str(tmp_path / "rows.parquet"))
    assert done.rows == 0
    assert pq.read_table(tmp_path / "rows.parquet").column_names[-2:] == ["amount", "country"]


def test_retention_deletes_old_dates_compacts_and_keeps_the_versions(tmp_path: Path):
    settings = ArchiveSettings(
        uri=str(tmp_path / "archive"), retention_seconds=2 * 86400, vacuum_grace_seconds=0
    )
    writer = ArchiveWriter(settings, "g")
    for i in range(4):  # one small file per flush and date
        write_predictions(writer, [f"e{i}a", f"e{i}b"], [i, i], first=2 * i)
    uri = settings.table_uri("fraud", Kind.PREDICTIONS)
    assert len(DeltaTable(uri).file_uris()) == 4
    done = maintain(settings, ["fraud", "never-archived"], DAY0 + timedelta(days=3, hours=1))
    table = DeltaTable(uri)
    assert done.deleted_rows == 2  # day 0 is older than three days minus two
    assert sorted(table.to_pandas()["event_id"]) == ["e1a", "e1b", "e2a", "e2b", "e3a", "e3b"]
    assert done.vacuumed_files >= 1
    assert table.transaction_version("driftwatch:g:p:0") == 8
    # The stored version still makes a replay a no-op after compaction.
    write_predictions(writer, ["e3a", "e3b"], [3, 3], first=6)
    assert len(DeltaTable(uri).to_pandas()) == 6


def _log_entries(uri: str) -> list[int]:
    """Versions of the commits a table's Delta log still holds."""
    return sorted(int(p.stem) for p in Path(uri, "_delta_log").glob("*.json"))


def test_maintenance_gives_an_older_table_its_log_retention_and_deletes_expired_entries(
    tmp_path: Path,
):
    """Every append costs time per log entry kept: a table created under Delta's default
    (30 days of entries) gets the archive's retention and loses its expired entries,
    and nothing it holds changes."""
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), log_retention_seconds=600)
    uri = settings.table_uri("fraud", Kind.PREDICTIONS)
    older = ArchiveWriter(replace(settings, log_retention_seconds=30 * 86400), "g")
    for i in range(6):
        write_predictions(older, [f"e{i}a", f"e{i}b"], [i, i], first=2 * i)
    assert DeltaTable(uri).metadata().configuration["delta.logRetentionDuration"] == (
        "interval 2592000 seconds"
    )
    # Entries written eleven minutes ago, as an hour-long run of flushes leaves them.
    aged = time.time() - 660
    for entry in Path(uri, "_delta_log").glob("*.json"):
        os.utime(entry, (aged, aged))
    maintain(settings, ["fraud"], DAY0 + timedelta(days=7))
    table = DeltaTable(uri)
    assert table.metadata().configuration == settings.table_properties()
    # The six appends' entries are gone (a checkpoint covers them); the job's own remain.
    assert _log_entries(uri) == list(range(6, table.version() + 1))
    assert len(table.to_pandas()) == 12
    assert table.transaction_version("driftwatch:g:p:0") == 12
    # The next append still skips what was archived and adds the rest.
    write_predictions(ArchiveWriter(settings, "g"), ["e5a", "e5b", "e6a", "e6b"], [6] * 4, first=10)
    assert len(DeltaTable(uri).to_pandas()) == 14


def test_maintenance_keeps_log_entries_younger_than_the_retention(tmp_path: Path):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), log_retention_seconds=600)
    writer = ArchiveWriter(settings, "g")
    for i in range(3):
        write_predictions(writer, [f"e{i}a", f"e{i}b"], [0, 0], first=2 * i)
    uri = settings.table_uri("fraud", Kind.PREDICTIONS)
    assert DeltaTable(uri).metadata().configuration == settings.table_properties()
    maintain(settings, ["fraud"], DAY0 + timedelta(days=1))
    assert _log_entries(uri) == list(range(DeltaTable(uri).version() + 1))


def test_a_table_that_cannot_be_maintained_holds_back_no_other(tmp_path: Path) -> None:
    settings = ArchiveSettings(
        uri=str(tmp_path / "archive"), retention_seconds=2 * 86400, vacuum_grace_seconds=0
    )
    writer = ArchiveWriter(settings, "g")
    for i in range(4):
        write_predictions(writer, [f"e{i}a", f"e{i}b"], [i, i], first=2 * i)
    # Model aml's table (first in order) has a log that does not parse.
    damaged = Path(settings.table_uri("aml", Kind.PREDICTIONS)) / "_delta_log"
    damaged.mkdir(parents=True)
    (damaged / "00000000000000000000.json").write_text("not a delta log\n", encoding="utf-8")
    with pytest.raises(ArchiveError, match="aml"):
        maintain(settings, ["aml", "fraud"], DAY0 + timedelta(days=3, hours=1))
    # fraud's table got its retention all the same: day 0 is gone.
    table = DeltaTable(settings.table_uri("fraud", Kind.PREDICTIONS))
    assert sorted(table.to_pandas()["event_id"]) == ["e1a", "e1b", "e2a", "e2b", "e3a", "e3b"]
