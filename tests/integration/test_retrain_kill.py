"""SIGKILL of the retraining loop in each run phase, then a restart: the run ends with the
verdict an undisturbed run reaches, and exactly one training and one validation job ran.

The loop runs as a real process (the service's retraining tick), jobs run as real
subprocesses of the local executor, on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.policy import TriggerPolicy
from service.config import load_config
from service.wiring.retraining import model_settings
from tests.harness.retrain import DIR_ENV, REPO, starts

pytestmark = pytest.mark.postgres


def write_config(path: Path, database_url: str, tmp_path: Path) -> Path:
    cfg: dict[str, Any] = {
        "kafka": {"bootstrap_servers": ["127.0.0.1:1"], "group_id": "g"},
        "database": {"url": database_url},
        "metrics": {"port": 0},
        "models": {
            "fraud": {
                "window": "1m",
                "features": {"amount": {"type": "numerical"}},
                "retrain": {
                    "min_holdout": 100,
                    "train_timeout": "2m",
                    "validate_timeout": "2m",
                    "pass_env": [DIR_ENV],  # the stub trainer finds its marks by it
                },
            }
        },
        "retrain": {
            "executor": "local",
            "workdir": str(tmp_path / "runs"),
            "artifacts_uri": str(tmp_path / "models"),
            "tick": "100ms",
            "command": ["python", "-m", "tests.harness.retrain", "train"],
        },
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def write_data(path: Path, rows: int = 500) -> Path:
    t = [datetime(2026, 11, 20, tzinfo=UTC)] * rows
    pq.write_table(
        pa.table(
            {
                "event_id": [f"e{i}" for i in range(rows)],
                "event_time": pa.array(t, pa.timestamp("us", tz="UTC")),
                "label": ["1"] * rows,
                "amount": [float(i) for i in range(rows)],
            }
        ),
        path,
    )
    return path


class Loops:
    def __init__(self, config: Path, data: Path, directory: Path) -> None:
        self.args = [str(config), str(data), str(directory)]
        # The local executor runs jobs in their own directory: the stub trainer is found by path.
        self.env = {**os.environ, DIR_ENV: str(directory), "PYTHONPATH": str(REPO)}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(Path(self.args[2]) / f"loop-{len(self.procs)}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.harness.retrain", "loop", *self.args],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


@pytest.fixture
def rig(pg_url: str, tmp_path: Path) -> Iterator[tuple[Loops, Path, str]]:
    config = write_config(tmp_path / "config.yaml", pg_url, tmp_path)
    directory = tmp_path / "marks"
    directory.mkdir()
    loops = Loops(config, write_data(tmp_path / "data.parquet"), directory)
    yield loops, directory, str(config)
    loops.close()


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_run(config: str) -> tuple[int, Any]:
    cfg = load_config(config, env={})
    engine = make_engine(cfg.database.url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as s:
        RegistryRepository(s).register(
            "fraud", "v1", "file:///champion.bin", "a" * 64, Stage.PRODUCTION, datetime.now(UTC)
        )
    decision = TriggerPolicy(sessions, model_settings(cfg), lambda: datetime.now(UTC)).request(
        "fraud", "kill test"
    )
    assert decision.run_id is not None
    return decision.run_id, sessions


def phase_of(sessions: Any, run_id: int) -> tuple[str, str | None, str | None]:
    with transaction(sessions) as s:
        run = RunRepository(s).get(run_id)
        assert run is not None
        return run.phase, run.verdict, run.failure_reason


@pytest.mark.parametrize("kill_in", [None, "export", "train", "validate"])
def test_a_run_killed_in_any_phase_resumes_to_the_same_verdict_with_one_job_each(
    rig: tuple[Loops, Path, str], kill_in: str | None
) -> None:
    loops, directory, config = rig
    run_id, sessions = start_run(config)
    if kill_in is not None:
        (directory / f"hold-{kill_in}").touch()
    first = loops.start()
    if kill_in is not None:
        wait_until(lambda: kill_in in starts(directory), 60, f"the {kill_in} step to begin")
        expected_phase = {"export": "pending", "train": "training", "validate": "validating"}
        assert phase_of(sessions, run_id)[0] == expected_phase[kill_in]
        first.send_signal(signal.SIGKILL)
        first.wait()
        (directory / f"go-{kill_in}").touch()
        loops.start()
    final = ("accepted", "rejected", "failed")
    wait_until(lambda: phase_of(sessions, run_id)[0] in final, 120, "the verdict")
    assert phase_of(sessions, run_id) == ("accepted", "accepted", None)
    began = starts(directory)
    assert (began.count("train"), began.count("validate")) == (1, 1), began
    # One export finished (the export killed before its rename is redone, once); the
    # ticks after it find the renamed file and never export again.
    assert began.count("export") == (2 if kill_in == "export" else 1), began
    with transaction(sessions) as s:
        history = [p.phase for p in RunRepository(s).history(run_id)]
    assert history == ["pending", "training", "validating", "accepted"]
