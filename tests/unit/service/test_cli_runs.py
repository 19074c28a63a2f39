"""``driftwatch runs list`` and ``runs show``, text and JSON, run in-process through main()."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from db.registry import ModelVersionRow
from db.runs import RetrainRunRow, RunPhaseRow
from db.session import make_engine, make_session_factory, transaction
from retrain.lifecycle import Loop
from retrain.runs import RunDriver
from retrain.settings import LoopSettings
from service.cli import main
from service.cli.run_record import phase_seconds
from service.config import load_config
from service.wiring.retraining import build_retraining, model_settings
from tests.unit.retrain.support import (
    SHA,
    T0,
    Clock,
    ParquetExporter,
    ScriptedExecutor,
    train_result,
    validate_result,
)
from tests.unit.service.test_cli_retrain import register, write_config

ONSET = datetime(2026, 11, 26, 18, tzinfo=UTC)
TRAINING = {"estimator": "HistGradientBoostingClassifier", "source": "champion", "rows": 400,
            "seconds": 1.5, "parameters": {"max_iter": 100}}  # fmt: skip


@pytest.fixture
def cfg(sqlite_url: str, tmp_path: Path) -> str:
    return write_config(sqlite_url, tmp_path)


def rejected_run(cfg: str, tmp_path: Path) -> int:
    """Run 1 of fraud, rejected by its accuracy gate: 5 s pending, 60 s training, 30 s
    validating; its row and candidate then get what a trainer of the change onset writes."""
    register(cfg, tmp_path, "v1", b"champion")
    config = load_config(cfg, env={})
    sessions = make_session_factory(make_engine(config.database.url))
    executor, clock = ScriptedExecutor(), Clock()
    retraining = build_retraining(
        config, sessions, executor=executor, exporter=ParquetExporter(), clock=clock
    )
    run_id = retraining.policy.request("fraud", "new season").run_id
    assert run_id is not None
    settings = LoopSettings(tmp_path / "runs", "file:///artifacts")
    driver = RunDriver(
        sessions, Loop(executor, model_settings(config), settings, ParquetExporter(), clock)
    )
    driver.tick()  # exports
    clock.advance(seconds=5)
    driver.tick()  # training
    clock.advance(seconds=60)
    executor.succeed("driftwatch-fraud-1-train", train_result(0.9))
    driver.tick()  # validating
    clock.advance(seconds=30)
    executor.succeed("driftwatch-fraud-1-validate", validate_result(0.8, 0.75), log="scored\n")
    driver.tick()  # rejected
    with transaction(sessions) as s:
        run = s.get(RetrainRunRow, run_id)
        assert run is not None and run.candidate_version_id is not None
        run.change_onset, run.data_note = ONSET, "from the change onset, 400 rows"
        candidate = s.get(ModelVersionRow, run.candidate_version_id)
        assert candidate is not None
        candidate.training = json.dumps(TRAINING)
    return run_id


def test_runs_show_json_has_everything_stored_about_the_run(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = rejected_run(cfg, tmp_path)
    capsys.readouterr()
    assert main(["runs", "show", str(run_id), "--config", cfg, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    at = {s: (T0 + timedelta(seconds=s)).isoformat() for s in (0, 5, 65, 95)}
    decision = shown.pop("decision")
    assert decision["cause_key"].startswith("manual-")
    assert decision == {
        "id": 1,
        "cause_kind": "manual",
        "cause_key": decision["cause_key"],
        "reason": "new season",
        "evidence": {},
    }
    assert shown.pop("data") == {
        "from": (T0 - timedelta(days=7)).isoformat(),
        "to": T0.isoformat(),
        "rows": 500,
        "uri": str(tmp_path / "runs" / "fraud-1" / "data.parquet"),
        "change_onset": ONSET.isoformat(),
        "note": "from the change onset, 400 rows",
    }
    assert shown.pop("champion") == {
        "version": "v1",
        "stage": "production",
        "uri": str(tmp_path / "v1.skops"),
        "sha256": hashlib.sha256((tmp_path / "v1.skops").read_bytes()).hexdigest(),
        "metrics": {},
        "training": None,
    }
    assert shown.pop("candidate") == {
        "version": "run-1",
        "stage": "rejected",
        "uri": "file:///artifacts/fraud/run-1/model.skops",
        "sha256": SHA,
        "metrics": {"accuracy": 0.9},
        "training": TRAINING,
    }
    assert shown.pop("gates") == [
        {"gate": "min_holdout", "metric": None, "slice": None, "champion": None,
         "candidate": 100.0, "threshold": 100.0, "passed": True},
        {"gate": "min_delta", "metric": "accuracy", "slice": None, "champion": 0.8,
         "candidate": 0.75, "threshold": 0.0, "passed": False},
    ]  # fmt: skip
    assert [(p["phase"], p["entered_at"]) for p in shown.pop("timeline")] == [
        ("pending", at[0]),
        ("training", at[5]),
        ("validating", at[65]),
        ("rejected", at[95]),
    ]
    assert shown.pop("timings") == {
        "pending": 5.0,
        "training": 60.0,
        "validating": 30.0,
        "rejected": 0.0,
    }
    assert shown.pop("launched_at") == {"train": at[5], "validate": at[65]}
    assert shown.pop("log_tails") == {"train": "ok\n", "validate": "scored\n"}
    assert shown == {
        "id": 1,
        "model": "fraud",
        "phase": "rejected",
        "active": False,
        "trigger": "manual",
        "reason": "new season",
        "verdict": "rejected",
        "failure_reason": None,
        "created_at": at[0],
        "updated_at": at[95],
        "finished_at": at[95],
    }


def test_runs_list_json_summarises_data_candidate_gates_and_durations(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rejected_run(cfg, tmp_path)
    assert main(["retrain", "--config", cfg, "--model", "fraud", "--reason", "again"]) == 0
    capsys.readouterr()
    assert main(["runs", "list", "--config", cfg, "--json"]) == 0
    second, first = json.loads(capsys.readouterr().out)
    assert first == {
        "id": 1,
        "model": "fraud",
        "phase": "rejected",
        "active": False,
        "trigger": "manual",
        "reason": "new season",
        "verdict": "rejected",
        "failure_reason": None,
        "created_at": T0.isoformat(),
        "updated_at": (T0 + timedelta(seconds=95)).isoformat(),
        "finished_at": (T0 + timedelta(seconds=95)).isoformat(),
        "data": {
            "from": (T0 - timedelta(days=7)).isoformat(),
            "to": T0.isoformat(),
            "rows": 500,
            "uri": str(tmp_path / "runs" / "fraud-1" / "data.parquet"),
            "change_onset": ONSET.isoformat(),
            "note": "from the change onset, 400 rows",
        },
        "candidate": {
            "version": "run-1",
            "stage": "rejected",
            "uri": "file:///artifacts/fraud/run-1/model.skops",
            "sha256": SHA,
        },
        "gates": {"passed": 1, "failed": 1, "failed_gates": ["min_delta accuracy"]},
        "seconds": 95.0,
        "timings": {"pending": 5.0, "training": 60.0, "validating": 30.0, "rejected": 0.0},
    }
    # An active run: nothing trained or judged yet, its time still running.
    assert (second["id"], second["phase"], second["active"]) == (2, "pending", True)
    assert (second["candidate"], second["finished_at"]) == (None, None)
    assert second["gates"] == {"passed": 0, "failed": 0, "failed_gates": []}
    assert list(second["timings"]) == ["pending"]
    assert second["seconds"] >= second["timings"]["pending"] >= 0


def test_runs_show_says_rejected_once_and_shows_onset_note_and_training(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = rejected_run(cfg, tmp_path)
    capsys.readouterr()
    assert main(["runs", "show", str(run_id), "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "rejected (rejected)" not in out
    assert out.startswith("run 1 of fraud: rejected\n")
    assert f"  change onset: {ONSET.isoformat()}\n" in out
    assert "  data note: from the change onset, 400 rows\n" in out
    assert (
        "  candidate: run-1 (rejected) file:///artifacts/fraud/run-1/model.skops\n"
        "    training: estimator HistGradientBoostingClassifier, source champion, rows 400, "
        "seconds 1.5\n"
    ) in out
    assert "  time spent: pending 5.0 s, training 60.0 s, validating 30.0 s\n" in out
    # Holdout rows are counted: whole numbers; a note that repeats its phase is said once.
    (holdout,) = [line for line in out.splitlines() if "min_holdout" in line]
    assert re.search(r"champion -  candidate \d+  threshold \d+$", holdout), holdout
    assert not re.search(r"\b(\w+) +\1\b", out), out


def test_runs_show_keeps_a_verdict_that_differs_from_the_phase(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = rejected_run(cfg, tmp_path)
    config = load_config(cfg, env={})
    with transaction(make_session_factory(make_engine(config.database.url))) as s:
        run = s.get(RetrainRunRow, run_id)
        assert run is not None
        run.phase = "cancelled"
    capsys.readouterr()
    assert main(["runs", "show", str(run_id), "--config", cfg]) == 0
    assert capsys.readouterr().out.startswith("run 1 of fraud: cancelled (rejected)\n")


@pytest.mark.parametrize("as_json", [False, True])
def test_runs_show_of_a_missing_run_fails_with_a_message(
    cfg: str, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    args = ["runs", "show", "42", "--config", cfg] + (["--json"] if as_json else [])
    assert main(args) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "driftwatch: no run 42\n")


def test_phase_seconds_run_to_the_next_phase_and_the_current_one_to_now() -> None:
    def entered(phase: str, seconds: float) -> RunPhaseRow:
        return RunPhaseRow(phase=phase, note="", entered_at=T0 + timedelta(seconds=seconds))

    run = RetrainRunRow(created_at=T0, finished_at=None)
    history = [entered("pending", 0), entered("training", 2), entered("pending", 10),
               entered("training", 11)]  # fmt: skip
    now = T0 + timedelta(seconds=41)
    assert phase_seconds(run, history, now) == {"pending": 3.0, "training": 38.0}
    run.finished_at = T0 + timedelta(seconds=20)  # a finished run stops the clock
    assert phase_seconds(run, history, now) == {"pending": 3.0, "training": 17.0}
