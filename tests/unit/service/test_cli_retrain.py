"""``driftwatch models``, ``retrain`` and ``runs``, run in-process through main()."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.registry import RegistryRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.artifacts import dump_model
from retrain.lifecycle import Loop
from retrain.runs import RunDriver
from retrain.settings import LoopSettings
from service.cli import main
from service.config import load_config
from service.wiring.retraining import build_retraining, model_settings
from tests.unit.retrain.support import (
    Clock,
    ParquetExporter,
    ScriptedExecutor,
    train_result,
    validate_result,
)


@pytest.fixture(autouse=True)
def _no_driftwatch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def cfg(sqlite_url: str, tmp_path: Path) -> str:
    return write_config(sqlite_url, tmp_path)


def write_config(database_url: str, tmp_path: Path) -> str:
    """A one-model config for the retrain commands, written into ``tmp_path``."""
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "database": {"url": database_url},
        "metrics": {"port": 0},
        "models": {
            "fraud": {
                "window": "1m",
                "features": {"amount": {"type": "numerical"}},
                "retrain": {"min_holdout": 100},
            }
        },
        "retrain": {"workdir": str(tmp_path / "runs"), "tick": "10ms"},
    }
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def register(cfg: str, tmp_path: Path, version: str, content: bytes) -> tuple[int, str]:
    """Register a skops file holding ``content`` (registration loads what it registers)."""
    artifact = tmp_path / f"{version}.skops"
    data = dump_model({"content": content.decode()})
    artifact.write_bytes(data)
    code = main(
        [
            "models",
            "register",
            "--config",
            cfg,
            "--model",
            "fraud",
            "--version",
            version,
            "--uri",
            str(artifact),
        ]
    )
    return code, hashlib.sha256(data).hexdigest()


def test_models_register_hashes_the_artifact_and_the_first_version_is_production(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, sha = register(cfg, tmp_path, "v1", b"champion bytes")
    assert code == 0
    assert capsys.readouterr().out == f"fraud v1: production, sha256 {sha}\n"
    code, sha2 = register(cfg, tmp_path, "v2", b"other bytes")
    assert code == 0
    assert capsys.readouterr().out == f"fraud v2: candidate, sha256 {sha2}\n"
    assert main(["models", "list", "--config", cfg]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:3] for line in out[1:]] == [
        ["fraud", "v1", "production"],
        ["fraud", "v2", "candidate"],
    ]
    assert main(["models", "show", "fraud", "--config", cfg]) == 0
    assert f"  sha256: {sha}" in capsys.readouterr().out


def test_models_register_names_an_unreadable_artifact(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.skops"
    args = ["models", "register", "--config", cfg, "--model", "fraud", "--version", "v1"]
    assert main([*args, "--uri", str(missing)]) == 1
    assert f"--uri: cannot read {missing}" in capsys.readouterr().err


def test_retrain_wait_without_a_champion_ends_failed_and_says_how_to_register_one(
    cfg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["retrain", "--config", cfg, "--model", "fraud", "--wait"]) == 1
    out = capsys.readouterr().out
    assert "run 1 of fraud started (requested from the CLI)" in out
    assert "run 1 of fraud: failed" in out
    assert "driftwatch models register --model fraud --version V --uri URI" in out
    phases = [line.split()[2] for line in out.splitlines() if line.startswith("    20")]
    assert phases == ["pending", "failed"]


def test_retrain_while_a_run_is_active_says_so_and_starts_nothing(
    cfg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["retrain", "--config", cfg, "--model", "fraud", "--reason", "first"]) == 0
    capsys.readouterr()
    assert main(["retrain", "--config", cfg, "--model", "fraud"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("fraud: run 1 is active; nothing started\nrun 1 of fraud: pending\n")
    assert main(["runs", "list", "--config", cfg]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 and rows[1].split()[:4] == ["1", "fraud", "pending", "manual"]


def test_runs_show_prints_the_trigger_timeline_and_every_gate(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register(cfg, tmp_path, "v1", b"champion")
    config = load_config(cfg, env={})
    sessions = make_session_factory(make_engine(config.database.url))
    executor, clock = ScriptedExecutor(), Clock()
    retraining = build_retraining(
        config, sessions, executor=executor, exporter=ParquetExporter(), clock=clock
    )
    run_id = retraining.policy.request("fraud", "new season").run_id
    assert run_id is not None
    loop = Loop(
        executor,
        model_settings(config),
        LoopSettings(tmp_path / "runs", "file:///artifacts"),
        ParquetExporter(),
        clock,
    )
    driver = RunDriver(sessions, loop)
    driver.tick()  # exports; the next tick starts training
    driver.tick()
    executor.succeed("driftwatch-fraud-1-train", train_result(0.9))
    driver.tick()
    executor.succeed("driftwatch-fraud-1-validate", validate_result(0.8, 0.75))
    driver.tick()
    capsys.readouterr()
    assert main(["runs", "show", str(run_id), "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert out.startswith("run 1 of fraud: rejected\n")  # the verdict repeats the phase
    assert "  trigger: manual: new season (cause manual-" in out
    assert "  champion: v1 (production)" in out and "  candidate: run-1 (rejected)" in out
    phases = [line.split()[2] for line in out.splitlines() if line.startswith("    2026-")]
    assert phases == ["pending", "training", "validating", "rejected"]
    assert (
        "    pass  min_holdout            holdout rows             "
        "champion -  candidate 100  threshold 100" in out
    )
    assert (
        "    FAIL  min_delta              accuracy                 "
        "champion 0.8000  candidate 0.7500  threshold 0" in out
    )


def test_runs_show_of_an_unknown_run(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "show", "42", "--config", cfg]) == 1
    assert capsys.readouterr().err == "driftwatch: no run 42\n"


def test_relative_paths_reach_jobs_and_the_registry_absolute(
    cfg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Jobs run in their own directory: a path relative to the service would miss there."""
    monkeypatch.chdir(tmp_path)
    raw = yaml.safe_load(Path(cfg).read_text(encoding="utf-8"))
    raw["retrain"].update({"workdir": "runs", "artifacts_uri": "models"})
    Path(cfg).write_text(yaml.safe_dump(raw), encoding="utf-8")
    (tmp_path / "champion.skops").write_bytes(dump_model({"content": "champion"}))
    args = ["models", "register", "--config", cfg, "--model", "fraud", "--version", "v1"]
    assert main([*args, "--uri", "champion.skops"]) == 0
    config = load_config(cfg, env={})
    sessions = make_session_factory(make_engine(config.database.url))
    with transaction(sessions) as s:
        champion = RegistryRepository(s).production("fraud")
        assert champion is not None and champion.uri == str(tmp_path / "champion.skops")
    settings = build_retraining(config, sessions, executor=ScriptedExecutor()).driver.loop.settings
    assert settings.data_path("fraud", 1) == tmp_path / "runs" / "fraud-1" / "data.parquet"
    assert settings.output_uri("fraud", 1) == f"{tmp_path}/models/fraud/run-1/"
