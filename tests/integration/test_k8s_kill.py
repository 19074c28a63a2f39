"""SIGKILL of the retraining loop between any two steps of a Kubernetes run (in the export,
with training committed but its create lost, after the create, while the Job runs, after it
completed), then a restart: the run ends as an undisturbed one, with one Job per step.

The loop is a real process (tests/harness/retrain.py) whose executor is
``kubernetes``, talking over HTTP to the emulator in this process; the kubelet runs
the contract-honouring stub trainer; the database is PostgreSQL.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from db.runs import RunRepository
from db.session import transaction
from tests.harness.k8s.cluster import NAMESPACE, cluster, job_template, until, write_kubeconfig
from tests.harness.k8s.kubelet import Kubelet
from tests.harness.k8s.server import Emulator, Fault
from tests.harness.retrain import DIR_ENV, REPO, starts
from tests.integration.test_retrain_kill import (
    Loops,
    phase_of,
    start_run,
    wait_until,
    write_config,
    write_data,
)

pytestmark = pytest.mark.postgres


def kubernetes_config(path: Path, url: str, tmp_path: Path, marks: Path) -> None:
    template = job_template([sys.executable, "-m", "tests.harness.retrain", "train"])
    container = template["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [
        {"name": DIR_ENV, "value": str(marks)},
        {"name": "PYTHONPATH", "value": str(REPO)},
    ]
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(template), encoding="utf-8")
    cfg: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["retrain"]["executor"] = "kubernetes"
    # The Job template above carries the stub's variable: pass_env is the local executor's.
    cfg["models"]["fraud"]["retrain"].pop("pass_env", None)
    cfg["retrain"]["kubernetes"] = {
        "namespace": NAMESPACE,
        "template": str(tmp_path / "job.yaml"),
        "kubeconfig": str(write_kubeconfig(tmp_path / "kubeconfig", url)),
        "request_timeout": "5s",
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")


@pytest.fixture
def rig(pg_url: str, tmp_path: Path) -> Iterator[tuple[Loops, Path, str, Emulator, Kubelet]]:
    with cluster(tmp_path) as (emulator, kubelet):
        assert kubelet is not None
        config = write_config(tmp_path / "config.yaml", pg_url, tmp_path)
        marks = tmp_path / "marks"
        marks.mkdir()
        kubernetes_config(config, emulator.url, tmp_path, marks)
        loops = Loops(config, write_data(tmp_path / "data.parquet"), marks)
        yield loops, marks, str(config), emulator, kubelet
        loops.close()


def jobs(emulator: Emulator) -> list[str]:
    return [j["metadata"]["name"] for j in emulator.store.list("jobs", NAMESPACE, None)[0]]


def complete(emulator: Emulator, name: str) -> bool:
    try:
        job = emulator.store.get("jobs", NAMESPACE, name)
    except Exception:
        return False
    return bool(job.get("status", {}).get("succeeded"))


@pytest.mark.parametrize(
    "kill_at", [None, "export", "create-lost", "after-create", "running", "completed"]
)
def test_a_loop_killed_between_steps_ends_the_run_as_undisturbed_with_one_job_each(
    rig: tuple[Loops, Path, str, Emulator, Kubelet], kill_at: str | None
) -> None:
    loops, marks, config, emulator, kubelet = rig
    run_id, sessions = start_run(config)
    train = f"driftwatch-fraud-{run_id}-train"
    if kill_at == "export":
        (marks / "hold-export").touch()
    elif kill_at == "create-lost":  # training committed, its create request never applied
        emulator.inject(Fault("create", "jobs", 0, delay=8.0))
    elif kill_at == "after-create":
        kubelet.running.clear()
    elif kill_at in ("running", "completed"):
        (marks / "hold-train").touch()
    first = loops.start()
    if kill_at == "export":
        wait_until(lambda: "export" in starts(marks), 60, "the export")
        assert jobs(emulator) == []
    elif kill_at == "create-lost":
        until(lambda: emulator.count("create", "jobs", 0), 60)
        assert phase_of(sessions, run_id)[0] == "training" and jobs(emulator) == []
    elif kill_at == "after-create":
        until(lambda: train in jobs(emulator), 60)
    elif kill_at is not None:
        wait_until(lambda: "train" in starts(marks), 60, "the training job to run")
    if kill_at is not None:
        first.send_signal(signal.SIGKILL)
        first.wait()
        (marks / "go-export").touch()
        (marks / "go-train").touch()
        kubelet.running.set()
        if kill_at == "completed":
            until(lambda: complete(emulator, train), 60)
            assert phase_of(sessions, run_id)[0] == "training"  # the result is not stored yet
        loops.start()
    final = ("accepted", "rejected", "failed")
    wait_until(lambda: phase_of(sessions, run_id)[0] in final, 120, "the verdict")
    assert phase_of(sessions, run_id) == ("accepted", "accepted", None)
    began = starts(marks)
    assert (began.count("train"), began.count("validate")) == (1, 1), began
    assert emulator.count("create", "jobs", 201) == 2 and kubelet.pods_started == 2
    assert sorted(jobs(emulator)) == sorted([train, f"driftwatch-fraud-{run_id}-validate"])
    with transaction(sessions) as s:
        history = [p.phase for p in RunRepository(s).history(run_id)]
    assert history == ["pending", "training", "validating", "accepted"]
