"""A run's launch record: a job launched once is never launched again, across restarts.

The rig of test_runs.py, with the scripted executor and with the real ones: the
``kubernetes`` executor through the official client over HTTP to the emulator
(whose kubelet runs the Job), and the ``local`` executor's subprocesses. A
restart is a fresh executor and driver; what survives it is the database and
the backend (the emulator's Jobs, the local executor's directories).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.registry import RegistryRepository
from db.runs import RunRepository
from db.session import transaction
from retrain.executors.base import Executor, JobPhase, Mode
from retrain.executors.kubernetes import KubernetesExecutor, KubernetesSettings
from retrain.executors.local import LocalExecutor
from retrain.lifecycle import Phase
from tests.harness.k8s.cluster import NAMESPACE, api_client, cluster, python_job, until
from tests.harness.k8s.kubelet import Kubelet
from tests.harness.k8s.server import Emulator, Fault
from tests.unit.retrain.support import train_result
from tests.unit.retrain.test_runs import TRAIN, VALIDATE, Rig

# A trainer that notes each start in MARKS/starts, waits for MARKS/go, then reports a
# training result (both modes: only training's result is read in these tests).
TRAINER = """
import json, os, pathlib, time
marks = pathlib.Path({marks!r})
with open(marks / "starts", "a") as f:
    f.write(os.environ["DRIFTWATCH_MODE"] + "\\n")
while not (marks / "go").exists():
    time.sleep(0.02)
result = {{"model_uri": os.environ["DRIFTWATCH_OUTPUT_URI"] + "m.skops", "sha256": "c" * 64,
          "metrics": {{"accuracy": 0.9}}}}
open(os.environ["DRIFTWATCH_RESULT_PATH"], "w").write(json.dumps(result))
"""


def lost(job: str) -> str:
    return f"training job {job} disappeared before its result was read"


def launched(rig: Rig, run_id: int) -> tuple[bool, bool]:
    with transaction(rig.sessions) as s:
        row = RunRepository(s).get(run_id)
        assert row is not None
        return row.train_launched_at is not None, row.validate_launched_at is not None


def starts(marks: Path) -> list[str]:
    path = marks / "starts"
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def crash_in(rig: Rig, launch: Callable[[Any], bool]) -> None:
    """One tick of a service that dies inside ``launch``, after the phase's commit."""
    dying = rig.driver()
    dying.loop.executor.launch = launch  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        dying.tick()


def killed(_spec: object) -> bool:
    raise SystemExit("killed")


# The scripted executor: the rule itself, and the candidate of a lost validation.


@pytest.fixture
def rig(sessions: sessionmaker[Session], tmp_path: Path) -> Rig:
    return Rig(sessions, tmp_path)


def test_a_validation_job_lost_after_its_launch_fails_the_run_and_rejects_the_candidate(
    rig: Rig,
) -> None:
    run_id = rig.start_exported()
    rig.driver().tick()
    rig.executor.succeed(TRAIN, train_result())
    assert rig.driver().tick() == {run_id: Phase.VALIDATING}
    assert launched(rig, run_id) == (True, True)
    rig.executor.vanish(VALIDATE)
    assert rig.restart().tick() == {run_id: Phase.FAILED}
    assert rig.run(run_id) == (
        "failed",
        None,
        f"validation job {VALIDATE} disappeared before its result was read",
    )
    assert rig.executor.launches == {TRAIN: 1, VALIDATE: 1}
    assert rig.stage(f"run-{run_id}") == "rejected"
    assert rig.alerts() == ["retrain_started", "run_failed"]


def test_a_launch_whose_record_was_lost_is_recorded_when_its_job_is_seen(rig: Rig) -> None:
    run_id = rig.start_exported()
    real = rig.executor.launch

    def launch_then_die(spec: Any) -> bool:
        real(spec)
        raise SystemExit("killed before the record")

    crash_in(rig, launch_then_die)
    assert launched(rig, run_id) == (False, False)
    assert rig.restart().tick() == {run_id: Phase.TRAINING}  # running: adopted, recorded
    assert launched(rig, run_id) == (True, False)
    rig.executor.vanish(TRAIN)
    assert rig.driver().tick() == {run_id: Phase.FAILED}
    assert rig.run(run_id)[2] == lost(TRAIN)
    assert rig.executor.launches == {TRAIN: 1}


# The kubernetes executor against the emulator.


@pytest.fixture
def k8s(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[tuple[Rig, Emulator, Kubelet]]:
    marks = tmp_path / "marks"
    marks.mkdir()
    template = python_job(TRAINER.format(marks=str(marks)))
    with cluster(tmp_path) as (emulator, kubelet):
        assert kubelet is not None

        def backend() -> Executor:
            settings = KubernetesSettings(NAMESPACE, template, request_timeout=2.0)
            return KubernetesExecutor(api_client(emulator.url), settings, sleep=lambda _: None)

        rig = Rig(sessions, tmp_path, backend=backend)
        yield rig, emulator, kubelet
        (marks / "go").touch()  # no trainer outlives the test
        rig.close()


def job_done(emulator: Emulator, name: str) -> bool:
    job = emulator.store.get("jobs", NAMESPACE, name)
    return bool(job.get("status", {}).get("succeeded"))


def test_a_kubernetes_job_deleted_while_the_service_was_down_fails_the_run_once(
    k8s: tuple[Rig, Emulator, Kubelet], tmp_path: Path
) -> None:
    rig, emulator, kubelet = k8s
    (tmp_path / "marks" / "go").touch()
    run_id = rig.start_exported()
    train = f"driftwatch-fraud-{run_id}-train"
    assert rig.driver().tick() == {run_id: Phase.TRAINING}
    assert launched(rig, run_id) == (True, False)
    until(lambda: job_done(emulator, train))
    rig.close()  # the service goes down; the Job finishes and its TTL deletes it
    emulator.store.delete("jobs", NAMESPACE, train)
    restarted = rig.restart()
    assert restarted.tick() == {run_id: Phase.FAILED}
    assert rig.run(run_id) == ("failed", None, lost(train))
    assert restarted.tick() == {}
    assert emulator.count("create", "jobs") == 1 and kubelet.pods_started == 1
    assert rig.history(run_id) == ["pending", "training", "failed"]
    assert rig.alerts() == ["retrain_started", "run_failed"]
    with transaction(rig.sessions) as s:
        assert [v.version for v in RegistryRepository(s).versions("fraud")] == ["v1"]


def test_a_crash_before_the_kubernetes_create_launches_once_after_restart(
    k8s: tuple[Rig, Emulator, Kubelet], tmp_path: Path
) -> None:
    rig, emulator, _ = k8s
    run_id = rig.start_exported()
    train = f"driftwatch-fraud-{run_id}-train"
    crash_in(rig, killed)
    assert rig.run(run_id)[0] == "training" and launched(rig, run_id) == (False, False)
    assert emulator.count("create", "jobs") == 0
    restarted = rig.restart()
    assert restarted.tick() == {run_id: Phase.TRAINING}  # missing, never launched: launched
    assert launched(rig, run_id) == (True, False)
    until(lambda: starts(tmp_path / "marks") == ["train"])
    assert rig.restart().tick() == {run_id: Phase.TRAINING}  # running: adopted
    (tmp_path / "marks" / "go").touch()
    until(lambda: job_done(emulator, train))
    # The executor learns of the completion from its watch, which may trail the store:
    # until then a tick sees the Job running and changes nothing.
    until(lambda: rig.driver().tick() != {run_id: Phase.TRAINING})
    assert rig.run(run_id)[0] == "validating"
    # One create each: the training Job, then validation's.
    assert emulator.count("create", "jobs") == emulator.count("create", "jobs", 201) == 2
    assert starts(tmp_path / "marks").count("train") == 1


def test_a_create_applied_but_unanswered_is_adopted_recorded_and_never_repeated(
    k8s: tuple[Rig, Emulator, Kubelet], tmp_path: Path
) -> None:
    rig, emulator, kubelet = k8s
    # Every attempt reaches the API server, whose answer is lost: the launch raises.
    emulator.inject(Fault("create", "jobs", 503, count=3, after=True))
    run_id = rig.start_exported()
    train = f"driftwatch-fraud-{run_id}-train"
    with pytest.raises(Exception, match="503"):
        rig.driver().tick()
    assert launched(rig, run_id) == (False, False)
    assert rig.restart().tick() == {run_id: Phase.TRAINING}  # the Job runs: recorded
    assert launched(rig, run_id) == (True, False)
    (tmp_path / "marks" / "go").touch()
    until(lambda: job_done(emulator, train))
    emulator.store.delete("jobs", NAMESPACE, train)
    assert rig.restart().tick() == {run_id: Phase.FAILED}
    assert rig.run(run_id)[2] == lost(train)
    # The three attempts of the one launch that raised (the first applied), none since.
    assert emulator.count("create", "jobs") == emulator.count("create", "jobs", 503) == 3
    assert kubelet.pods_started == 1


# The local executor: its directory outlives the service, so a restart adopts.


@pytest.fixture
def local(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[Rig]:
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER.format(marks=str(marks)), encoding="utf-8")
    rig = Rig(
        sessions,
        tmp_path,
        backend=lambda: LocalExecutor(tmp_path / "jobs", [sys.executable, str(script)]),
    )
    yield rig
    (marks / "go").touch()


def job_dir(tmp_path: Path, run_id: int) -> Path:
    return tmp_path / "jobs" / f"driftwatch-fraud-{run_id}-train"


def test_a_local_job_running_across_a_restart_is_adopted_not_failed(
    local: Rig, tmp_path: Path
) -> None:
    run_id = local.start_exported()
    assert local.driver().tick() == {run_id: Phase.TRAINING}
    until(lambda: starts(tmp_path / "marks") == ["train"])
    restarted = local.restart()
    assert restarted.tick() == {run_id: Phase.TRAINING}
    (tmp_path / "marks" / "go").touch()
    until(lambda: local.restart().tick() == {run_id: Phase.VALIDATING})
    assert starts(tmp_path / "marks").count("train") == 1


def crash_at_the_spawn(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher dies after writing the job's directory, before its wrapper runs (or
    the wrapper dies before it begins): the directory holds the job and nothing else."""

    def dead(*_args: object, **_kw: object) -> subprocess.Popen[bytes]:
        raise SystemExit("killed at the spawn")

    with monkeypatch.context() as m:
        m.setattr(subprocess, "Popen", dead)
        with pytest.raises(SystemExit):
            rig.driver().tick()


@pytest.mark.parametrize("recorded", [False, True])
def test_a_local_job_that_never_started_is_launched_once_whether_recorded_or_not(
    local: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorded: bool
) -> None:
    run_id = local.start_exported()
    crash_at_the_spawn(local, monkeypatch)
    assert (job_dir(tmp_path, run_id) / "job.json").exists()
    if recorded:  # the launch had returned before its wrapper was killed
        with transaction(local.sessions) as s:
            RunRepository(s).record_launch(run_id, Mode.TRAIN, local.clock())
    restarted = local.restart()
    with transaction(local.sessions) as s:
        row = RunRepository(s).get(run_id)
        assert row is not None
        spec = restarted.loop.train_spec(row, s)
    assert restarted.loop.executor.observe(spec).phase is JobPhase.UNSTARTED
    assert restarted.tick() == {run_id: Phase.TRAINING}
    assert launched(local, run_id) == (True, False)
    until(lambda: starts(tmp_path / "marks") == ["train"])
    assert local.restart().tick() == {run_id: Phase.TRAINING}
    (tmp_path / "marks" / "go").touch()
    until(lambda: local.driver().tick() == {run_id: Phase.VALIDATING})
    assert starts(tmp_path / "marks").count("train") == 1


def test_a_local_crash_before_the_launch_launches_once_after_restart(
    local: Rig, tmp_path: Path
) -> None:
    run_id = local.start_exported()
    crash_in(local, killed)
    assert not job_dir(tmp_path, run_id).exists()
    assert local.restart().tick() == {run_id: Phase.TRAINING}
    until(lambda: starts(tmp_path / "marks") == ["train"])
    assert local.restart().tick() == {run_id: Phase.TRAINING}
    assert starts(tmp_path / "marks") == ["train"]


def test_a_local_job_whose_directory_was_removed_after_its_launch_fails_the_run(
    local: Rig, tmp_path: Path
) -> None:
    (tmp_path / "marks" / "go").touch()
    run_id = local.start_exported()
    local.driver().tick()
    until((job_dir(tmp_path, run_id) / "exit.json").exists)
    shutil.rmtree(job_dir(tmp_path, run_id))  # an operator cleaned retrain.workdir
    assert local.restart().tick() == {run_id: Phase.FAILED}
    assert local.run(run_id)[2] == lost(f"driftwatch-fraud-{run_id}-train")
    assert starts(tmp_path / "marks") == ["train"]


@pytest.mark.parametrize(
    "uri",
    [
        "file:///artifacts/fraud/run-2/model.skops",  # another run's output
        "file:///artifacts/fraud/run-1/../run-2/model.skops",
        "file:///etc/passwd",
        "s3://artifacts/fraud/run-1/model.skops",
    ],
)
def test_a_model_uri_outside_the_runs_output_fails_the_run_and_registers_nothing(
    rig: Rig, uri: str
) -> None:
    run_id = rig.start_exported()
    rig.driver().tick()
    rig.executor.succeed(TRAIN, train_result(uri=uri))
    assert rig.driver().tick() == {run_id: Phase.FAILED}
    _, _, reason = rig.run(run_id)
    assert (reason or "").startswith(
        f"training result unusable: model_uri {uri!r} is outside the run's output_uri "
        "'file:///artifacts/fraud/run-1/'"
    ), reason
    assert rig.stage("run-1") is None
    assert VALIDATE not in rig.executor.launches
