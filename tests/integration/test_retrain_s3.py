"""A run with its data and model artifacts on S3 (moto's server): the local executor's
training job reads the run's exported data and the champion from the bucket and writes
the candidate there, validation reads them back, and the S3 credentials reach the jobs
through ``pass_env`` only, never through a file the service writes or a log."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from pyarrow import fs as pafs

from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.artifacts import load_model, save_model
from retrain.lifecycle import Phase
from service.config import load_config
from service.dev.concept import CATEGORICAL, NUMERICAL, Era, draw, train_champion
from service.wiring.retraining import build_retraining
from tests.harness.retrain import CopyExporter
from tests.harness.s3 import LocalS3
from tests.integration.test_retrain_reference import SEED, drive
from tests.unit.retrain.export import write_export

AWS_ENV = [
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ALLOW_HTTP",
]


def config(database_url: str, tmp_path: Path, bucket: str) -> Any:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"]},
        "database": {"url": database_url},
        "models": {
            "fraud": {
                "window": "1m",
                "prediction": {"type": "numerical"},
                "features": {
                    **{n: {"type": "numerical", "nullable": True} for n in NUMERICAL},
                    **{c: {"type": "categorical", "nullable": True} for c in CATEGORICAL},
                },
                "retrain": {
                    "gates": {"accuracy": {"min_delta": 0.05}},
                    "pass_env": AWS_ENV,
                },
            }
        },
        "archive": {"uri": f"s3://{bucket}/archive"},
        "retrain": {
            "workdir": str(tmp_path / "runs"),
            "artifacts_uri": f"s3://{bucket}/models",
            "data_uri": f"s3://{bucket}/runs",
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_config(path, env={})


def test_a_run_trains_and_validates_with_its_artifacts_on_s3(
    sqlite_url: str,
    tmp_path: Path,
    s3_server: LocalS3,
    s3_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = config(sqlite_url, tmp_path, s3_bucket)
    champion_uri, champion_sha = save_model(
        train_champion(SEED), f"s3://{s3_bucket}/models/champion/model.skops"
    )
    sessions = make_session_factory(make_engine(sqlite_url))
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", champion_uri, champion_sha, Stage.PRODUCTION, datetime.now(UTC)
        )
    marks = tmp_path / "marks"
    marks.mkdir()
    data = write_export(
        tmp_path / "post.parquet", draw(5_000, Era.POST, SEED, block=40), NUMERICAL, CATEGORICAL
    )
    retraining = build_retraining(cfg, sessions, exporter=CopyExporter(data, marks))
    run_id = retraining.policy.request("fraud", "on s3").run_id
    assert run_id is not None
    assert drive(retraining, run_id) is Phase.ACCEPTED, _reason(sessions, run_id)

    with transaction(sessions) as s:
        candidate = RegistryRepository(s).get("fraud", f"run-{run_id}")
        gates = RunRepository(s).gates(run_id)
    assert candidate is not None and candidate.stage == "candidate"
    assert candidate.uri == f"s3://{s3_bucket}/models/fraud/run-{run_id}/model.skops"
    assert gates and all(g.passed for g in gates)
    with transaction(sessions) as s:
        run = RunRepository(s).get(run_id)
        assert run is not None
        data_uri, data_rows = run.data_uri, run.data_rows
    # The jobs read the run's data from the bucket: the export was uploaded there.
    assert data_uri == f"s3://{s3_bucket}/runs/fraud-{run_id}/data.parquet"
    assert data_rows == 5_000
    assert pq.read_metadata(data_uri).num_rows == 5_000
    # The bytes on the server are what the registry recorded; they load as a model.
    assert load_model(candidate.uri, candidate.sha256) is not None
    listed = pafs.FileSystem.from_uri(f"s3://{s3_bucket}/models/fraud/run-{run_id}")[0]
    names = {
        Path(i.path).name
        for i in listed.get_file_info(pafs.FileSelector(f"{s3_bucket}/models/fraud/run-{run_id}"))
    }
    assert "model.skops" in names

    # The jobs saw the credentials (they reached the bucket); nothing the service or the
    # jobs wrote to disk (descriptions, logs, results) holds the secret key.
    secret = s3_server.secret_key.encode()
    assert secret == os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    written = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"job.json", "log", "wrapper.log", "result.json"}
    leaked = [str(p) for p in written if secret in p.read_bytes()]
    assert leaked == []
    # Nor any log record of the service's side, at any level.
    assert caplog.records
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if s3_server.secret_key in m or s3_server.access_key in m]


def _reason(sessions: Any, run_id: int) -> str | None:
    with transaction(sessions) as s:
        run = RunRepository(s).get(run_id)
        return None if run is None else run.failure_reason
