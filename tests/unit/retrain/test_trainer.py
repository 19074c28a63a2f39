"""The reference trainer, run as the local executor runs it: a real subprocess, real sklearn."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from retrain.artifacts import load_model, save_model
from retrain.errors import TrainerError
from retrain.executors import JobPhase, JobSpec, JobStatus, LocalExecutor, Mode
from retrain.trainer.data import read_labeled, split_by_time
from retrain.trainer.run import encode_result
from service.dev.concept import CATEGORICAL, NUMERICAL, Era, draw, train_champion
from tests.unit.retrain.export import write_export

SEED = 7


@pytest.fixture(scope="module")
def post_drift(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 post-drift rows of the concept scenario, exported."""
    path = tmp_path_factory.mktemp("data") / "post.parquet"
    return write_export(path, draw(5_000, Era.POST, SEED, block=40), NUMERICAL, CATEGORICAL)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    path = tmp_path_factory.mktemp("models") / "champion.skops"
    return save_model(train_champion(SEED), str(path))


def _settle(executor: LocalExecutor, spec: JobSpec) -> JobStatus:
    give_up = time.monotonic() + 120
    while (status := executor.observe(spec)).phase is JobPhase.RUNNING:
        assert time.monotonic() < give_up, "trainer still running"
        time.sleep(0.1)
    return status


def _job(tmp_path: Path, mode: Mode, data: Path, env: dict[str, str]) -> tuple[JobStatus, Path]:
    executor = LocalExecutor(tmp_path / "runs", ["python", "-m", "retrain.trainer"])
    spec = JobSpec(
        run_id=1,
        model="fraud",
        mode=mode,
        data_uri=str(data),
        output_uri=str(tmp_path / "models" / "fraud" / "run-1"),
        timeout=timedelta(minutes=5),
        env={"DRIFTWATCH_TASK": "classification", "DRIFTWATCH_HOLDOUT_SHARE": "0.2", **env},
    )
    executor.launch(spec)
    return _settle(executor, spec), executor.job_dir(spec) / "result.json"


def test_train_then_validate_the_candidate_beats_the_drifted_champion(
    tmp_path: Path, post_drift: Path, champion: tuple[str, str]
) -> None:
    trained, _ = _job(tmp_path, Mode.TRAIN, post_drift, {})
    assert trained.phase is JobPhase.SUCCEEDED, trained
    result: dict[str, Any] = dict(trained.result or {})
    uri = str(tmp_path / "models" / "fraud" / "run-1" / "model.skops")
    assert result["model_uri"] == uri
    assert result["rows"] == {"train": 4_000, "holdout": 1_000}
    assert result["data_range"] == {"from": "2026-11-27T00:00:00Z", "to": "2026-11-27T01:23:19Z"}
    assert result["trainer"] == "driftwatch-reference/1"
    assert set(result["metrics"]) == {"accuracy", "roc_auc", "log_loss"}
    assert result["metrics"]["accuracy"] > 0.83
    candidate = load_model(uri, result["sha256"])
    assert [str(c) for c in candidate.classes_] == ["0", "1"]

    validated, _ = _job(
        tmp_path,
        Mode.VALIDATE,
        post_drift,
        {
            "DRIFTWATCH_CHAMPION_URI": champion[0],
            "DRIFTWATCH_CHAMPION_SHA256": champion[1],
            "DRIFTWATCH_CANDIDATE_URI": uri,
            "DRIFTWATCH_CANDIDATE_SHA256": result["sha256"],
            "DRIFTWATCH_SLICE_FEATURE": "country",
        },
    )
    assert validated.phase is JobPhase.SUCCEEDED, validated
    report: dict[str, Any] = dict(validated.result or {})
    assert report["holdout_rows"] == 1_000
    # The candidate scores the holdout as it did when it was trained: the same rows.
    assert report["candidate"]["metrics"] == result["metrics"]
    assert report["champion"]["metrics"]["accuracy"] < 0.6
    slices = report["candidate"]["slices"]
    assert set(slices) == {"DE", "FR", "US", "GB", "NL"}
    assert sum(s["rows"] for s in slices.values()) == 1_000
    assert report["champion"]["slices"].keys() == slices.keys()


def test_a_tampered_candidate_is_refused_at_validation(
    tmp_path: Path, post_drift: Path, champion: tuple[str, str]
) -> None:
    tampered = tmp_path / "tampered.skops"
    data = bytearray(Path(champion[0]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    status, result_path = _job(
        tmp_path,
        Mode.VALIDATE,
        post_drift,
        {
            "DRIFTWATCH_CHAMPION_URI": champion[0],
            "DRIFTWATCH_CHAMPION_SHA256": champion[1],
            "DRIFTWATCH_CANDIDATE_URI": str(tampered),
            "DRIFTWATCH_CANDIDATE_SHA256": champion[1],
        },
    )
    assert status.phase is JobPhase.FAILED
    assert status.reason == f"exit code 1: driftwatch-trainer: sha256 mismatch for {tampered}"
    assert not result_path.exists()


def _trainer(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retrain.trainer"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DRIFTWATCH_DATA_URI": ""}, "DRIFTWATCH_DATA_URI is not set"),
        ({"DRIFTWATCH_MODE": "score"}, "DRIFTWATCH_MODE must be train or validate, got 'score'"),
        ({"DRIFTWATCH_TASK": "ranking"}, "DRIFTWATCH_TASK must be classification or regression"),
        ({"DRIFTWATCH_HOLDOUT_SHARE": "1.5"}, "DRIFTWATCH_HOLDOUT_SHARE must be in (0, 1)"),
        ({"DRIFTWATCH_DATA_URI": "/no/such.parquet"}, "cannot read /no/such.parquet"),
        ({"DRIFTWATCH_TASK": "regression", "LABELS": "text"}, "regression labels must be numbers"),
        ({"LABELS": "one class"}, "the training rows hold one class only ('1')"),
    ],
)
def test_bad_input_exits_1_with_one_line_and_no_result(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    frame = draw(200, Era.PRE, SEED)
    if change.pop("LABELS", None) == "text":
        frame["label"] = "fraud"
    elif "DRIFTWATCH_TASK" not in change:
        frame["label"] = 1
    data = write_export(tmp_path / "d.parquet", frame, NUMERICAL, CATEGORICAL)
    env = {
        "PATH": "/usr/bin:/bin",
        "DRIFTWATCH_MODE": "train",
        "DRIFTWATCH_DATA_URI": str(data),
        "DRIFTWATCH_OUTPUT_URI": str(tmp_path / "out"),
        "DRIFTWATCH_RESULT_PATH": str(tmp_path / "result.json"),
        **change,
    }
    done = _trainer(env)
    assert done.returncode == 1
    assert done.stderr.startswith(f"driftwatch-trainer: {message}"), done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "result.json").exists()
    assert not (tmp_path / "out").exists()


def test_regression_reports_mae_rmse_r2(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=600), "kind": rng.choice(["a", "b"], 600)})
    frame["label"] = 2.0 * frame["x"] + (frame["kind"] == "a") * 3.0 + rng.normal(0, 0.1, 600)
    data = write_export(tmp_path / "r.parquet", frame, ("x",), ("kind",))
    env = {
        "PATH": "/usr/bin:/bin",
        "DRIFTWATCH_MODE": "train",
        "DRIFTWATCH_TASK": "regression",
        "DRIFTWATCH_DATA_URI": str(data),
        "DRIFTWATCH_OUTPUT_URI": str(tmp_path / "out"),
        "DRIFTWATCH_RESULT_PATH": str(tmp_path / "result.json"),
    }
    assert _trainer(env).returncode == 0
    metrics = json.loads((tmp_path / "result.json").read_text())["metrics"]
    assert set(metrics) == {"mae", "rmse", "r2"}
    # Noise alone costs an MAE of 0.08; the boosted trees approximate the line in steps.
    assert metrics["mae"] < 0.2
    assert metrics["r2"] > 0.99


def test_the_split_is_by_event_time_then_event_id_whatever_the_file_order(tmp_path: Path) -> None:
    frame = draw(10, Era.PRE, SEED)
    path = write_export(tmp_path / "d.parquet", frame, NUMERICAL, CATEGORICAL)
    shuffled = pd.read_parquet(path).sample(frac=1.0, random_state=1)
    shuffled["event_time"] = shuffled["event_time"].min()  # all at one time: event_id decides
    shuffled.to_parquet(tmp_path / "s.parquet", index=False)
    split = split_by_time(read_labeled(str(tmp_path / "s.parquet")).frame, 0.25)
    assert list(split.train["event_id"]) == [f"e{i:08d}" for i in range(7)]
    assert list(split.holdout["event_id"]) == ["e00000007", "e00000008", "e00000009"]
    with pytest.raises(TrainerError, match="too few"):
        split_by_time(split.train.iloc[:1], 0.2)


def test_a_result_too_large_loses_its_smallest_slices() -> None:
    slices = {f"value-{i:03d}": {"rows": 1000 - i, "metrics": {"accuracy": 0.5}} for i in range(80)}
    result = {
        "holdout_rows": 5,
        "champion": {"metrics": {}, "slices": dict(slices)},
        "candidate": {"metrics": {}, "slices": dict(slices)},
    }
    data = encode_result(result)
    assert len(data) <= 4096
    kept = json.loads(data)["candidate"]["slices"]
    assert list(kept) == [f"value-{i:03d}" for i in range(len(kept))]
    assert json.loads(data)["champion"]["slices"].keys() == kept.keys()


def test_a_champion_of_other_types_needs_them_named(
    tmp_path: Path, post_drift: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    from retrain.artifacts import TRUSTED_TYPES, artifact_types
    from retrain.trainer.__main__ import main
    from service.dev.concept import linear_pipeline

    frame = pd.read_parquet(post_drift).iloc[:1_000]
    forest = linear_pipeline()
    forest.steps[-1] = ("model", RandomForestClassifier(n_estimators=3, random_state=0))
    forest.fit(frame[[*NUMERICAL, *CATEGORICAL]], frame["label"])
    uri, sha256 = save_model(forest, str(tmp_path / "forest.skops"))
    env = {
        "DRIFTWATCH_MODE": "validate",
        "DRIFTWATCH_DATA_URI": str(post_drift),
        "DRIFTWATCH_RESULT_PATH": str(tmp_path / "result.json"),
        "DRIFTWATCH_CHAMPION_URI": uri,
        "DRIFTWATCH_CHAMPION_SHA256": sha256,
        "DRIFTWATCH_CANDIDATE_URI": uri,
        "DRIFTWATCH_CANDIDATE_SHA256": sha256,
    }
    assert main(env) == 1
    assert "holds types that are not trusted: sklearn.ensemble" in capsys.readouterr().err
    assert not (tmp_path / "result.json").exists()
    extra = artifact_types(Path(uri).read_bytes()) - TRUSTED_TYPES
    assert main({**env, "DRIFTWATCH_TRUSTED_TYPES": ", ".join(sorted(extra))}) == 0
    report = json.loads((tmp_path / "result.json").read_text())
    assert report["champion"] == report["candidate"]
    assert report["holdout_rows"] == 1_000


def test_a_missing_category_scores_the_same_as_none_or_nan() -> None:
    model = train_champion(SEED, rows=2_000)
    rows = draw(200, Era.PRE, SEED)
    with_none = rows.assign(channel=pd.Series([None] * 200, dtype=object))
    with_nan = rows.assign(channel=pd.Series([np.nan] * 200, dtype=object))
    x = [*NUMERICAL, *CATEGORICAL]
    assert np.array_equal(model.predict_proba(with_none[x]), model.predict_proba(with_nan[x]))
