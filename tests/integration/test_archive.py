"""End to end: Kafka -> driftwatch run -> the archive, read without driftwatch; the export."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from consumers.synthetic import SyntheticPlan, SyntheticStream
from service.config import load_config
from tests.harness.kafka import TestKafka
from tests.harness.labels import produce_labeled, stored_cells
from tests.harness.scenario import REPO, wait_for_count, wait_for_total, wide_model

pytestmark = pytest.mark.kafka


def test_run_archives_predictions_and_labels_once_and_exports_the_labeled_rows(
    kafka: TestKafka, db_url, make_config, services, tmp_path: Path
):
    labels = {"task": "classification", "join_ttl": "1d"}
    off = {**wide_model(numerical=2, categorical=1, labels=labels), "archive": {"enabled": False}}
    config = make_config(
        db_url, models={"wide": wide_model(labels=labels), "off": off}, flush_interval="200ms"
    )
    cfg = load_config(config, env={})
    specs = cfg.model_specs()
    start = time.time() - 2 * 86400
    streams = [
        SyntheticStream(SyntheticPlan(model=specs[m], rate=20.0, start=start)) for m in specs
    ]
    producer = kafka.producer()
    try:
        sent = produce_labeled(
            producer, streams, 3000, cfg.kafka.topics.predictions, cfg.kafka.topics.labels, seed=3
        )
    finally:
        producer.close()
    svc = services(config)
    wait_for_total(db_url, 6000, timeout=120)
    wait_for_count(lambda: sum(stored_cells(db_url).values()), sent.labeled, 120)
    assert svc.terminate() == 0, svc.log_text()

    # Read with deltalake and pandas/pyarrow only: the archive is an open format.
    archive = config.parent / "archive"
    assert sorted(p.name for p in archive.iterdir()) == ["wide"]
    predictions = DeltaTable(str(archive / "wide" / "predictions")).to_pandas()
    assert len(predictions) == 3000
    assert predictions["event_id"].is_unique
    assert predictions[["partition", "offset"]].duplicated().sum() == 0
    assert {c for c in predictions.columns if c.startswith(("num_", "cat_"))} == {
        f.name for f in specs["wide"].features
    }
    assert (predictions["date"].astype(str) == predictions["event_time"].dt.date.astype(str)).all()
    wide_labels = DeltaTable(str(archive / "wide" / "labels")).to_pyarrow_dataset().to_table()
    wide_labeled = sum(n for cell, n in sent.cells.items() if cell[0] == "wide")
    # Each label message once; some labels were sent twice, as two messages.
    sources = wide_labels.select(["partition", "offset"]).to_pandas()
    assert not sources.duplicated().any()
    assert len(set(wide_labels.column("event_id").to_pylist())) == wide_labeled
    out = tmp_path / "export" / "wide.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "archive", "export", "--config", str(config),
         "--model", "wide", "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"exported {wide_labeled} labeled rows of model wide" in done.stdout
    exported = pq.read_table(out)
    assert exported.column_names[:6] == [
        "event_id", "model_version", "event_time", "prediction", "label", "label_time"
    ]  # fmt: skip
    frame: pd.DataFrame = exported.to_pandas()
    assert len(frame) == wide_labeled and frame["event_id"].is_unique
    assert set(frame["label"]) <= {"0", "1"}
    assert frame["event_time"].is_monotonic_increasing
