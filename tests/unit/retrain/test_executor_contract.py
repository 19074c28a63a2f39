"""The executor contract, run against every backend: ``local`` (real subprocesses),
``kubernetes`` (the official client over HTTP against the emulator, whose kubelet runs
the Job's command here) and ``fake`` (in process).

The same job program runs under ``local`` and ``kubernetes``: it notes each start in
a marks directory, then writes its result or exits 3, as the spec's environment
says; the ``fake`` backend scripts the same outcomes from the same environment.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from retrain.executors import FakeExecutor, JobPhase, JobSpec, JobStatus, LocalExecutor, Mode
from retrain.executors.base import Executor
from retrain.executors.kubernetes import KubernetesExecutor, KubernetesSettings
from tests.harness.k8s.cluster import NAMESPACE, api_client, cluster, python_job, until

PROGRAM = """
import json, os, pathlib, sys
marks = pathlib.Path(os.environ["CONTRACT_MARKS"])
with open(marks / os.environ["DRIFTWATCH_RUN_ID"], "a") as f:
    f.write("start\\n")
if os.environ["CONTRACT_OUTCOME"] == "fail":
    print("the trainer gave up")
    sys.exit(3)
result = {"run": os.environ["DRIFTWATCH_RUN_ID"], "mode": os.environ["DRIFTWATCH_MODE"]}
open(os.environ["DRIFTWATCH_RESULT_PATH"], "w").write(json.dumps(result))
"""


@dataclass
class Backend:
    """An executor, and how many times a job's program began under it."""

    executor: Executor
    starts: Callable[[JobSpec], int]
    marks: Path


def spec(marks: Path, run_id: int, outcome: str = "succeed") -> JobSpec:
    env = {"CONTRACT_MARKS": str(marks), "CONTRACT_OUTCOME": outcome}
    return JobSpec(
        run_id, "fraud", Mode.TRAIN, "/data/x.parquet", "/models/fraud/",
        timedelta(minutes=10), env,
    )  # fmt: skip


def marked(marks: Path) -> Callable[[JobSpec], int]:
    def starts(s: JobSpec) -> int:
        path = marks / str(s.run_id)
        return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0

    return starts


def scripted(s: JobSpec) -> JobStatus:
    """The fake backend's outcome: what the program does under the other two."""
    if s.env["CONTRACT_OUTCOME"] == "fail":
        return JobStatus(JobPhase.FAILED, "exit code 3: the trainer gave up")
    return JobStatus(JobPhase.SUCCEEDED, result={"run": str(s.run_id), "mode": s.mode.value})


@pytest.fixture(params=["local", "kubernetes", "fake"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    marks = tmp_path / "marks"
    marks.mkdir()
    if request.param == "fake":
        fake = FakeExecutor(scripted)
        yield Backend(fake, lambda s: fake.starts[s.name], marks)
    elif request.param == "local":
        program = tmp_path / "job.py"
        program.write_text(PROGRAM, encoding="utf-8")
        local = LocalExecutor(tmp_path / "jobs", [sys.executable, str(program)])
        yield Backend(local, marked(marks), marks)
    else:
        with cluster(tmp_path) as (emulator, _node):
            settings = KubernetesSettings(NAMESPACE, python_job(PROGRAM), request_timeout=5.0)
            k8s = KubernetesExecutor(api_client(emulator.url), settings, sleep=lambda _: None)
            yield Backend(k8s, marked(marks), marks)
            k8s.close()


def settled(executor: Executor, s: JobSpec) -> JobStatus:
    """The job's status once it has an outcome (the limit only stops a hung test)."""

    def check() -> JobStatus | None:
        status = executor.observe(s)
        return None if status.phase is JobPhase.RUNNING else status

    result: JobStatus = until(check, limit=120.0)
    return result


def test_a_job_is_launched_once_and_adopted_on_every_repeat(backend: Backend) -> None:
    job = spec(backend.marks, 1)
    assert backend.executor.launch(job) is True
    assert backend.executor.launch(job) is True  # a repeat adopts the job
    status = settled(backend.executor, job)
    assert backend.executor.launch(job) is True  # finished, it is still adopted
    assert backend.starts(job) == 1
    assert status.phase is JobPhase.SUCCEEDED, status
    assert status.result == {"run": "1", "mode": "train"}


def test_a_failed_job_is_reported_with_its_reason(backend: Backend) -> None:
    job = spec(backend.marks, 2, outcome="fail")
    assert backend.executor.launch(job) is True
    status = settled(backend.executor, job)
    assert status.phase is JobPhase.FAILED
    assert status.reason is not None and "exit code 3" in status.reason, status
    assert status.result is None
    assert backend.starts(job) == 1


def test_a_job_never_launched_is_missing(backend: Backend) -> None:
    job = spec(backend.marks, 3)
    assert backend.executor.observe(job).phase is JobPhase.MISSING
    assert backend.starts(job) == 0


def test_the_results_of_two_jobs_are_read_each_from_its_own(backend: Backend) -> None:
    first, second = spec(backend.marks, 4), spec(backend.marks, 5)
    assert backend.executor.launch(first) and backend.executor.launch(second)
    results = [settled(backend.executor, s).result for s in (first, second)]
    assert [json.dumps(r, sort_keys=True) for r in results] == [
        '{"mode": "train", "run": "4"}',
        '{"mode": "train", "run": "5"}',
    ]
