"""A run end to end with the local executor and the reference trainer on the real-model
scenario: the candidate trained on post-drift rows beats the drifted champion and is
accepted; a candidate tampered with after training is refused at validation."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.artifacts import save_model
from retrain.executors.base import JobPhase
from retrain.lifecycle import Phase
from service.config import load_config
from service.dev.concept import CATEGORICAL, NUMERICAL, Era, draw, train_champion
from service.wiring.retraining import Retraining, build_retraining
from tests.harness.retrain import CopyExporter
from tests.unit.retrain.export import write_export

SEED = 7


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    path = tmp_path_factory.mktemp("champion") / "champion.skops"
    uri, sha256 = save_model(train_champion(SEED), str(path))
    return uri, sha256


def rig(database_url: str, tmp_path: Path, champion: tuple[str, str]) -> tuple[Retraining, Any]:
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
                    "gates": {"accuracy": {"min_delta": 0.05}, "log_loss": {"max_degradation": 0}},
                    "slice_feature": "country",
                    "slice_max_degradation": 0.05,
                },
            }
        },
        "retrain": {"workdir": str(tmp_path / "runs"), "artifacts_uri": str(tmp_path / "models")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    cfg = load_config(path, env={})
    sessions = make_session_factory(make_engine(database_url))
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", *champion, Stage.PRODUCTION, datetime.now(UTC)
        )
    marks = tmp_path / "marks"
    marks.mkdir()
    data = write_export(
        tmp_path / "post.parquet", draw(5_000, Era.POST, SEED, block=40), NUMERICAL, CATEGORICAL
    )
    return build_retraining(cfg, sessions, exporter=CopyExporter(data, marks)), sessions


def drive(retraining: Retraining, run_id: int, until: Phase | None = None) -> Phase:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        phase = retraining.driver.step(run_id)
        if phase.final or phase is until:
            return phase
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {phase} after 300 s")


def test_the_candidate_beats_the_drifted_champion_and_is_accepted(
    sqlite_url: str, tmp_path: Path, champion: tuple[str, str]
) -> None:
    retraining, sessions = rig(sqlite_url, tmp_path, champion)
    run_id = retraining.policy.request("fraud", "concept changed").run_id
    assert run_id is not None
    assert drive(retraining, run_id) is Phase.ACCEPTED
    with transaction(sessions) as s:
        gates = {(g.gate, g.metric, g.slice): g for g in RunRepository(s).gates(run_id)}
        candidate = RegistryRepository(s).get("fraud", f"run-{run_id}")
    accuracy = gates[("min_delta", "accuracy", None)]
    assert accuracy.champion_value is not None and accuracy.candidate_value is not None
    # Seed 7, 1,000 holdout rows: the drifted champion near 46%, the candidate near 85%.
    assert accuracy.champion_value < 0.55 and accuracy.candidate_value > 0.80
    assert gates[("min_holdout", None, None)].candidate_value == 1000
    assert {k[2] for k in gates if k[0] == "slice_max_degradation"} >= {"DE", "FR", "US"}
    assert all(g.passed for g in gates.values())
    assert candidate is not None and candidate.stage == "candidate"
    assert candidate.metric_values["accuracy"] == pytest.approx(accuracy.candidate_value)


def test_a_candidate_tampered_with_after_training_is_refused_at_validation(
    sqlite_url: str, tmp_path: Path, champion: tuple[str, str]
) -> None:
    retraining, sessions = rig(sqlite_url, tmp_path, champion)
    run_id = retraining.policy.request("fraud", "tamper").run_id
    assert run_id is not None
    assert drive(retraining, run_id, until=Phase.TRAINING) is Phase.TRAINING
    loop = retraining.driver.loop
    with transaction(sessions) as s:
        run = RunRepository(s).get(run_id)
        assert run is not None
        spec = loop.train_spec(run, s)
    # Tampered once training is over and before the loop registers the candidate and
    # launches its validation, so validation can only ever see the tampered file.
    deadline = time.monotonic() + 300
    while (status := loop.executor.observe(spec)).phase is not JobPhase.SUCCEEDED:
        assert status.phase is JobPhase.RUNNING and time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status.result is not None
    artifact = Path(str(status.result["model_uri"]).removeprefix("file://"))
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    assert drive(retraining, run_id) is Phase.FAILED
    with transaction(sessions) as s:
        run = RunRepository(s).get(run_id)
        assert run is not None and run.failure_reason is not None
        assert run.failure_reason.startswith("validation failed: ")
        assert "sha256 mismatch" in run.failure_reason, run.failure_reason
        assert RunRepository(s).gates(run_id) == []
