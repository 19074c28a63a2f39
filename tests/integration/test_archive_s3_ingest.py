"""End to end on S3: Kafka -> ``driftwatch run`` with the archive on moto's S3 server ->
the tables read back with deltalake alone, and ``driftwatch archive export`` from them.

The service gets the server's endpoint and credentials as a deployment gives them,
in the standard ``AWS_*`` environment; neither the service's log nor the CLI's
output holds the keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from consumers.synthetic import SyntheticPlan, SyntheticStream
from service.config import load_config
from tests.harness.kafka import TestKafka
from tests.harness.labels import produce_labeled, stored_cells
from tests.harness.s3 import LocalS3
from tests.harness.scenario import REPO, wait_for_count, wait_for_total, wide_model

pytestmark = pytest.mark.kafka


def test_run_archives_to_s3_once_and_the_export_reads_it_back(
    kafka: TestKafka, sqlite_url, make_config, services, tmp_path: Path, s3_server: LocalS3,
    s3_bucket: str,
):  # fmt: skip
    labels = {"task": "classification", "join_ttl": "1d"}
    archive = f"s3://{s3_bucket}/archive"
    config = make_config(
        sqlite_url,
        models={"wide": wide_model(labels=labels)},
        flush_interval="200ms",
        extra={"archive": {"uri": archive}},
    )
    cfg = load_config(config, env={})
    specs = cfg.model_specs()
    stream = SyntheticStream(
        SyntheticPlan(model=specs["wide"], rate=20.0, start=time.time() - 86400)
    )
    producer = kafka.producer()
    try:
        sent = produce_labeled(
            producer, [stream], 1500, cfg.kafka.topics.predictions, cfg.kafka.topics.labels, seed=5
        )
    finally:
        producer.close()
    svc = services(config)
    wait_for_total(sqlite_url, 1500, timeout=120)
    wait_for_count(lambda: sum(stored_cells(sqlite_url).values()), sent.labeled, 120)
    assert svc.terminate() == 0, svc.log_text()

    options = dict(cfg.archive.settings().storage_options)
    predictions = DeltaTable(f"{archive}/wide/predictions", storage_options=options).to_pandas()
    assert len(predictions) == 1500
    assert predictions["event_id"].is_unique
    assert predictions[["partition", "offset"]].duplicated().sum() == 0
    labels_table = DeltaTable(f"{archive}/wide/labels", storage_options=options).to_pandas()
    assert not labels_table[["partition", "offset"]].duplicated().any()
    assert labels_table["event_id"].nunique() == sent.labeled

    out = tmp_path / "export" / "wide.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "archive", "export", "--config", str(config),
         "--model", "wide", "-o", str(out)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=120, env=os.environ.copy(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"exported {sent.labeled} labeled rows of model wide" in done.stdout
    assert pq.read_metadata(out).num_rows == sent.labeled
    for text in (svc.log_text(), done.stdout, done.stderr):
        assert s3_server.secret_key not in text
        assert s3_server.access_key not in text
