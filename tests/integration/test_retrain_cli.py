"""``driftwatch retrain --wait`` end to end, in-process through main(): the champion
registered by ``models register``, the run's data exported from a real archive, the
local executor's training and validation Jobs running the reference trainer, and, for a
model that rolls out by itself, the rollout the accepted verdict starts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from db.archive import ArchiveSettings, ArchiveWriter, Kind, prediction_table
from db.archive.tables import label_table
from db.registry import RegistryRepository
from db.rollouts import RolloutRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.artifacts import save_model
from service.cli import main
from service.config import load_config
from service.dev.concept import CATEGORICAL, NUMERICAL, Era, draw, train_champion

SEED = 7
ROWS = 5_000


def write_config(database_url: str, tmp_path: Path) -> Path:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"]},
        "database": {"url": database_url},
        "metrics": {"port": 0},
        "archive": {"uri": str(tmp_path / "archive")},
        "models": {
            "fraud": {
                "window": "1m",
                "prediction": {"type": "numerical"},
                "labels": {"task": "classification"},
                "features": {
                    **{n: {"type": "numerical", "nullable": True} for n in NUMERICAL},
                    **{c: {"type": "categorical", "nullable": True} for c in CATEGORICAL},
                },
                "retrain": {"gates": {"accuracy": {"min_delta": 0.05}}},
                "rollout": {
                    "enabled": True,
                    "router": "file",
                    "file": {"path": str(tmp_path / "split.json")},
                },
            }
        },
        "retrain": {
            "workdir": str(tmp_path / "runs"),
            "artifacts_uri": str(tmp_path / "models"),
            "tick": "200ms",
        },
    }
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def archive_post_drift_rows(config: Path) -> None:
    """What ingestion would have archived over the last half hour: the drifted world's
    predictions and, a second after each, its label."""
    cfg = load_config(config, env={})
    spec = cfg.models["fraud"].spec("fraud")
    frame = draw(ROWS, Era.POST, SEED, block=40)
    ids = [f"e{i}" for i in range(ROWS)]
    times = time.time() - 1800 + np.arange(ROWS) * 0.3
    names = (*NUMERICAL, *CATEGORICAL)
    features = {name: [None if pd.isna(v) else v for v in frame[name]] for name in names}
    offsets, partitions = np.arange(ROWS, dtype=np.int64), np.zeros(ROWS, np.int32)
    writer = ArchiveWriter(ArchiveSettings(uri=cfg.archive.uri), "g")
    predictions = prediction_table(
        spec, ids, ["v1"] * ROWS, times, features, [0.5] * ROWS, "p", partitions, offsets
    )
    writer.append("fraud", Kind.PREDICTIONS, predictions, {("p", 0): ROWS})
    labels = label_table(ids, frame["label"].tolist(), times + 1, "l", partitions, offsets)
    writer.append("fraud", Kind.LABELS, labels, {("l", 0): ROWS})


def test_retrain_wait_drives_the_run_to_its_verdict_and_names_the_rollout_it_started(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(sqlite_url, tmp_path)
    champion = tmp_path / "champion.skops"
    save_model(train_champion(SEED), str(champion))
    args = ["--config", str(config), "--model", "fraud"]
    assert main(["models", "register", *args, "--version", "v1", "--uri", str(champion)]) == 0
    archive_post_drift_rows(config)
    capsys.readouterr()

    code = main(["retrain", *args, "--reason", "new season", "--wait"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "run 1 of fraud started (new season)" in out
    assert "run 1 of fraud: accepted" in out
    assert out.rstrip().endswith(
        "rollout 1 of fraud started; the service's rollout job carries it out: "
        "driftwatch rollouts show 1"
    )
    sessions = make_session_factory(make_engine(sqlite_url))
    with transaction(sessions) as s:
        (rollout,) = RolloutRepository(s).rollouts("fraud")
        candidate = RegistryRepository(s).get("fraud", "run-1")
        assert candidate is not None
        # The verdict's transaction started it; the service's rollout job walks its steps.
        assert (rollout.run_id, rollout.canary_version_id) == (1, candidate.id)
        assert (rollout.phase, rollout.step, candidate.stage) == ("pending", 0, "canary")
    assert not (tmp_path / "split.json").exists()  # no router call from the command
