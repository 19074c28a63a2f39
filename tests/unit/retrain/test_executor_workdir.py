"""What finished runs leave in ``retrain.workdir`` is deleted ``keep_finished`` after
they end, and nothing else is."""

from __future__ import annotations

import fcntl
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import yaml
from sqlalchemy.orm import Session, sessionmaker

from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.executors import LocalExecutor
from retrain.executors.workdir import run_of, sweep
from service.config import load_config
from service.wiring.retraining import build_retraining
from tests.unit.retrain.support import T0, Clock, ParquetExporter


def test_run_of_reads_data_and_job_directory_names() -> None:
    assert run_of("fraud-12") == 12
    assert run_of("driftwatch-fraud-12-train") == 12
    assert run_of("driftwatch-a-5-train-7") == 7  # the data of a model called driftwatch-a-5-train
    assert run_of("driftwatch-fraud-3-validate") == 3
    assert run_of("notes") is None and run_of("fraud") is None


def test_only_directories_of_runs_final_for_long_enough_are_deleted(tmp_path: Path) -> None:
    work = tmp_path / "runs"
    names = ["fraud-1", "driftwatch-fraud-1-train", "driftwatch-fraud-1-validate",
             "fraud-2", "fraud-3", "notes", "fraud-5", "driftwatch-fraud-6-train"]  # fmt: skip
    for name in names:
        (work / name).mkdir(parents=True)
        (work / name / "file").write_text("x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (work / "fraud-4").symlink_to(elsewhere)  # never followed
    # Run 6 is final but its wrapper still holds the lock (a cancelled job stopping).
    lock = open(work / "driftwatch-fraud-6-train" / "lock", "a")  # noqa: SIM115
    fcntl.flock(lock, fcntl.LOCK_EX)
    asked: list[set[int]] = []

    def finished_at(ids: object) -> dict[int, object]:
        asked.append(set(ids))  # type: ignore[call-overload]
        # 2 is not final, 3 ended 59 minutes ago, 5 is unknown to SQL.
        return {1: T0, 3: T0 + timedelta(minutes=1), 4: T0, 6: T0}

    now, keep = T0 + timedelta(hours=1), timedelta(hours=1)
    deleted = sweep(work, finished_at, now, keep)  # type: ignore[arg-type]
    lock.close()
    assert sorted(deleted) == ["driftwatch-fraud-1-train", "driftwatch-fraud-1-validate", "fraud-1"]
    assert sorted(p.name for p in work.iterdir()) == sorted(
        ["fraud-2", "fraud-3", "fraud-4", "notes", "fraud-5", "driftwatch-fraud-6-train"]
    )
    assert asked == [{1, 2, 3, 5, 6}] and elsewhere.exists()
    assert sweep(tmp_path / "absent", finished_at, now, keep) == []  # type: ignore[arg-type]


def reason(sessions: sessionmaker[Session], run_id: int) -> str | None:
    with transaction(sessions) as s:
        row = RunRepository(s).get(run_id)
        return row.failure_reason if row else None


JOB = """
import json, os
out = os.environ["DRIFTWATCH_OUTPUT_URI"]
if os.environ["DRIFTWATCH_MODE"] == "train":
    result = {"model_uri": out + "model.skops", "sha256": "c" * 64,
              "metrics": {"accuracy": 0.9}}
else:
    result = {"holdout_rows": 100, "champion": {"metrics": {"accuracy": 0.8}, "slices": {}},
              "candidate": {"metrics": {"accuracy": 0.9}, "slices": {}}}
open(os.environ["DRIFTWATCH_RESULT_PATH"], "w").write(json.dumps(result))
"""


def test_a_finished_runs_data_and_job_directories_go_after_keep_finished(
    sqlite_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "runs"
    raw = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:9092"]},
        "database": {"url": sqlite_url},
        "models": {"fraud": {"window": "1m", "features": {"amount": {"type": "numerical"}},
                             "retrain": {"min_holdout": 100}}},
        "retrain": {"workdir": str(work), "artifacts_uri": str(tmp_path / "models"),
                    "keep_finished": "1h"},
    }  # fmt: skip
    path = tmp_path / "driftwatch.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    config = load_config(str(path), env={})
    sessions = make_session_factory(make_engine(config.database.url))
    with transaction(sessions) as s:
        RegistryRepository(s).register("fraud", "v1", "/m/v1", "a" * 64, Stage.PRODUCTION, T0)
    script = tmp_path / "job.py"
    script.write_text(JOB, encoding="utf-8")
    clock = Clock()
    retraining = build_retraining(
        config,
        sessions,
        executor=LocalExecutor(work, [sys.executable, str(script)]),
        exporter=ParquetExporter(),
        clock=clock,
    )
    run_id = retraining.policy.request("fraud", "test").run_id
    give_up = time.monotonic() + 60  # a hang guard, not a timing assertion
    while (step := retraining.driver.tick()) != {run_id: "accepted"}:
        assert time.monotonic() < give_up, f"the run did not finish: {step}"
        assert run_id not in step or step[run_id] in ("pending", "training", "validating"), reason(
            sessions, run_id
        )
        time.sleep(0.05)
    left = sorted(p.name for p in work.iterdir())
    assert left == ["driftwatch-fraud-1-train", "driftwatch-fraud-1-validate", "fraud-1"]
    assert json.loads((work / "driftwatch-fraud-1-train" / "result.json").read_text())
    clock.advance(minutes=59)
    retraining.tick()  # final, but kept for a look by hand
    assert sorted(p.name for p in work.iterdir()) == left
    clock.advance(minutes=1)
    retraining.tick()
    assert list(work.iterdir()) == []
