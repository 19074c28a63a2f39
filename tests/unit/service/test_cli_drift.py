"""The reference, evaluation and report commands, run in-process through main()."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from service.cli import main


@pytest.fixture(autouse=True)
def _no_driftwatch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


MODEL = {
    "window": "1m",
    "prediction": {"type": "numerical"},
    "features": {
        "amount": {"type": "numerical"},
        "country": {"type": "categorical", "nullable": True},
    },
}


@pytest.fixture
def cfg(sqlite_url: str, tmp_path: Path) -> str:
    raw: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "database": {"url": sqlite_url},
        "metrics": {"port": 0},
        "models": {"fraud": MODEL},
    }
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def reference_frame(rows: int = 2000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "amount": rng.normal(50, 10, rows),
            "country": rng.choice(["de", "fr", "it"], rows),
            "prediction": rng.random(rows),
            "ignored": 1,
        }
    )


def test_reference_build_from_csv_and_parquet_versions_the_profile(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = reference_frame()
    frame.to_csv(tmp_path / "ref.csv", index=False)
    frame.to_parquet(tmp_path / "ref.parquet")
    build = ["reference", "build", "--config", cfg, "--model", "fraud", "--quiet"]
    assert main([*build, str(tmp_path / "ref.csv")]) == 0
    assert main([*build, str(tmp_path / "ref.parquet"), "--bins", "50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("reference profile v1 of model fraud: 2000 rows, 2 features and the")
    assert out[1].startswith("reference profile v2 of model fraud")
    assert main(["reference", "list", "--config", cfg]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in listing[1:]] == [["fraud", "1"], ["fraud", "2"]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("amount,prediction\n1,0.5\n", "lacks the model's features ['country']"),
        ("amount,country\nabc,de\n", "reference column 'amount': 1 value(s) are not numbers"),
        ("amount,country\n", "has no rows"),
    ],
)
def test_reference_build_rejects_bad_files_with_one_line(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    code = main(["reference", "build", "--config", cfg, "--model", "fraud", "--quiet", str(path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--model", "nope", "x.csv"], 2, "--model: 'nope' is not in the config"),
        (["--model", "fraud", "missing.csv"], 1, "reference file missing.csv does not exist"),
        (["--model", "fraud", "data.json"], 1, "expected a .csv or .parquet file"),
        (["--model", "fraud"], 1, "give a reference FILE"),
        (
            ["--model", "fraud", "--from-stream", "2026-01-02", "2026-01-01"],
            1,
            "END must be after START",
        ),
        (
            ["--model", "fraud", "--from-stream", "yesterday", "today"],
            1,
            "'yesterday' is not a time",
        ),
        (
            ["--model", "fraud", "--from-stream", "2026-01-01", "2026-01-02"],
            1,
            "no stored window of model 'fraud' with a row sample",
        ),
    ],
)
def test_reference_build_argument_errors(
    cfg: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.json").write_text("{}", encoding="utf-8")
    assert main(["reference", "build", "--config", cfg, "--quiet", *args]) == code
    assert message in capsys.readouterr().err


def test_report_commands_on_missing_reports_fail_cleanly(
    cfg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", "show", "7", "--config", cfg]) == 1
    assert capsys.readouterr().err.strip() == "driftwatch: no drift report with id 7"
    assert main(["report", "html", "7", "-o", str(tmp_path / "x.html"), "--config", cfg]) == 1
    assert capsys.readouterr().err.strip() == "driftwatch: no drift report with id 7"
    assert main(["reports", "--config", cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["evaluate", "--config", cfg]) == 0
    assert capsys.readouterr().out.strip() == "0 new drift report(s), 0 new performance report(s)"


def test_evaluate_then_list_show_and_render_reports(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    from db.session import make_engine, make_session_factory
    from tests.unit.service.test_evaluation import (
        MODEL_CONFIG,
        SPEC,
        aligned,
        build_profile,
        ingest,
    )

    sessions = make_session_factory(make_engine(sqlite_url))
    build_profile(sessions, tmp_path)
    ingest(sessions, replace(aligned(sessions), sample_size=200), windows=3, drift_at=10)
    raw = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"], "group_id": "g"},
        "database": {"url": sqlite_url},
        "models": {SPEC.name: MODEL_CONFIG.model_dump(mode="json")},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    cfg = str(path)
    # The partitions are active (flushed "at" T0, which is ahead of the clock),
    # so the newest window is still open.
    assert main(["evaluate", "--config", cfg]) == 0
    assert capsys.readouterr().out.strip() == "2 new drift report(s), 0 new performance report(s)"
    assert main(["reports", "--config", cfg]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[7] for line in table[1:]] == ["-", "DRIFT"]
    assert main(["report", "show", "2", "--config", cfg, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["dataset_drift"] is True and shown["source"] == "sketch"
    assert {f["name"] for f in shown["features"]} == {f.name for f in SPEC.features}
    out = tmp_path / "r.html"
    assert main(["report", "html", "2", "-o", str(out), "--config", cfg]) == 0
    assert "txn_per_hour" in out.read_text(encoding="utf-8")
    assert (
        main(
            [
                "reference",
                "build",
                "--config",
                cfg,
                "--model",
                "fraud",
                "--from-stream",
                "0",
                "9999999999",
            ]
        )
        == 0
    )
    assert "sample of 200 of 4500 events" in capsys.readouterr().out
