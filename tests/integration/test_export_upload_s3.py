"""A run's export with ``retrain.data_uri`` on S3 (moto's server): staged in the workdir
under the export's lock, then uploaded; a crash between the two is mended by the next
attempt, and an upload that fails is a retriable export failure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from retrain.executors.fake import FakeExecutor
from retrain.lifecycle import Export, Loop
from retrain.phases import data_exists, export
from retrain.settings import LoopSettings
from tests.unit.retrain.support import Clock, ParquetExporter, model_settings

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _setup(tmp_path: Path, bucket: str) -> tuple[Loop, ParquetExporter, Export]:
    settings = LoopSettings(tmp_path / "runs", "file:///artifacts", f"s3://{bucket}/runs")
    exporter = ParquetExporter()
    loop = Loop(FakeExecutor(), {"fraud": model_settings()}, settings, exporter, Clock(T0))
    due = Export(
        "fraud",
        T0 - timedelta(days=1),
        T0,
        settings.data_path("fraud", 1),
        settings.data_location("fraud", 1),
    )
    return loop, exporter, due


def test_the_export_is_staged_then_uploaded(tmp_path: Path, s3_bucket: str) -> None:
    loop, exporter, due = _setup(tmp_path, s3_bucket)
    assert due.upload == f"s3://{s3_bucket}/runs/fraud-1/data.parquet"
    assert not data_exists(due.upload)
    assert export(loop, due) is None
    assert exporter.calls == 1 and data_exists(due.upload)
    assert pq.read_table(due.upload).equals(pq.read_table(due.dest))
    assert not Path(f"{due.dest}.lock").exists()


def test_a_staged_export_whose_upload_never_happened_is_uploaded_not_exported_again(
    tmp_path: Path, s3_bucket: str
) -> None:
    loop, exporter, due = _setup(tmp_path, s3_bucket)
    # The process died after the rename in the workdir, before the upload.
    assert export(loop, replace(due, upload=None)) is None
    assert exporter.calls == 1 and not data_exists(str(due.upload))
    assert export(loop, due) is None
    assert exporter.calls == 1 and data_exists(str(due.upload))


def test_an_upload_the_store_refuses_is_a_retriable_failure(tmp_path: Path, s3_bucket: str) -> None:
    loop, _, due = _setup(tmp_path, s3_bucket)
    missing = replace(due, upload="s3://no-such-bucket-dw/runs/fraud-1/data.parquet")
    failure = export(loop, missing)
    assert failure is not None and failure.retriable
    assert failure.reason.startswith("uploading the training data to s3://no-such-bucket-dw/")
    assert due.dest.exists() and Path(f"{due.dest}.lock").exists()
