"""The local executor with real subprocesses: throwaway scripts stand in for trainers."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest

from retrain.errors import ExecutorError
from retrain.executors import (
    FakeExecutor,
    JobPhase,
    JobSpec,
    JobStatus,
    LocalExecutor,
    Mode,
    make_executor,
)
from retrain.executors.base import BASE_ENV
from retrain.executors.local import last_log_line


def _spec(tmp_path: Path, timeout: float = 60.0, run_id: int = 1) -> JobSpec:
    return JobSpec(
        run_id=run_id,
        model="fraud",
        mode=Mode.TRAIN,
        data_uri=str(tmp_path / "data.parquet"),
        output_uri=str(tmp_path / "out"),
        timeout=timedelta(seconds=timeout),
        env={"DRIFTWATCH_TASK": "classification"},
    )


def _executor(tmp_path: Path, body: str) -> LocalExecutor:
    script = tmp_path / "trainer.py"
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    return LocalExecutor(tmp_path / "runs", [sys.executable, str(script)])


def _settle(executor: LocalExecutor, spec: JobSpec, limit: float = 60.0) -> JobStatus:
    """Observe until the job leaves RUNNING (the limit only stops a hung test)."""
    give_up = time.monotonic() + limit
    while (status := executor.observe(spec)).phase is JobPhase.RUNNING:
        assert time.monotonic() < give_up, "job still running"
        time.sleep(0.05)
    return status


def _run(tmp_path: Path, body: str, timeout: float = 60.0) -> JobStatus:
    executor = _executor(tmp_path, body)
    spec = _spec(tmp_path, timeout)
    executor.launch(spec)
    return _settle(executor, spec)


def test_success_carries_the_result_and_the_job_gets_the_environment_contract(
    tmp_path: Path,
) -> None:
    os.environ["DRIFTWATCH_DATABASE__URL"] = "postgresql://secret@db/x"
    try:
        status = _run(
            tmp_path,
            """
            import json, os
            env = {k: v for k, v in os.environ.items() if k.startswith("DRIFTWATCH_")}
            print("training on", env["DRIFTWATCH_DATA_URI"])
            with open(os.environ["DRIFTWATCH_RESULT_PATH"], "w") as out:
                json.dump(env, out)
            """,
        )
    finally:
        del os.environ["DRIFTWATCH_DATABASE__URL"]
    assert status.phase is JobPhase.SUCCEEDED, status
    assert status.result is not None
    result = dict(status.result)
    assert result.pop("DRIFTWATCH_RESULT_PATH").endswith("driftwatch-fraud-1-train/result.json")
    assert result == {
        "DRIFTWATCH_RUN_ID": "1",
        "DRIFTWATCH_MODEL": "fraud",
        "DRIFTWATCH_MODE": "train",
        "DRIFTWATCH_DATA_URI": str(tmp_path / "data.parquet"),
        "DRIFTWATCH_OUTPUT_URI": str(tmp_path / "out"),
        "DRIFTWATCH_TASK": "classification",
    }
    assert status.log_tail == f"training on {tmp_path / 'data.parquet'}"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("import sys; print('bad data', file=sys.stderr); sys.exit(3)", "exit code 3: bad data"),
        ("print('done, forgot the result')", "no result written"),
        (
            "import os; open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w').write('{\"a\": ')",
            "result is not valid JSON: Expecting value: line 1 column 7 (char 6)",
        ),
        (
            "import os, json; open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w')"
            ".write(json.dumps({'x': 'y' * 5000}))",
            "result is 5009 bytes, more than 4096",
        ),
        (
            "import os; open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w').write('[1, 2]')",
            "result is not a JSON object but list",
        ),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL"),
    ],
)
def test_a_failing_trainer_fails_the_job_with_the_reason(
    tmp_path: Path, body: str, reason: str
) -> None:
    status = _run(tmp_path, body)
    assert status.phase is JobPhase.FAILED
    assert status.reason == reason
    assert status.result is None


def test_the_log_tail_keeps_the_last_lines_of_a_failure(tmp_path: Path) -> None:
    status = _run(
        tmp_path,
        """
        import sys
        for i in range(500):
            print(f"line {i}")
        print("Traceback: ValueError: no label column", file=sys.stderr)
        sys.exit(1)
        """,
    )
    assert status.reason == "exit code 1: Traceback: ValueError: no label column"
    assert status.log_tail is not None
    lines = status.log_tail.splitlines()
    assert len(lines) == 50
    assert lines[0] == "line 451"
    assert lines[-1] == "Traceback: ValueError: no label column"


@pytest.mark.parametrize("size", [2048, 6000])  # 6000: longer than the 4 KB log tail
def test_a_long_failure_message_is_shortened_in_the_middle_never_dropped(
    tmp_path: Path, size: int
) -> None:
    status = _run(
        tmp_path,
        f"""
        import sys
        print("loading rows")
        body = "".join(chr(ord("a") + i % 26) for i in range({size}))
        print("driftwatch-trainer: START " + body + " END", file=sys.stderr)
        print("", file=sys.stderr)
        sys.exit(1)
        """,
    )
    body = "".join(chr(ord("a") + i % 26) for i in range(size))
    message = f"driftwatch-trainer: START {body} END"
    assert status.phase is JobPhase.FAILED and status.reason is not None
    assert status.reason == f"exit code 1: {message[:240]} … {message[-240:]}"
    assert len(status.reason) < 600


def test_a_short_failure_message_is_kept_whole(tmp_path: Path) -> None:
    line = "driftwatch-trainer: " + "x" * 463  # 483 characters: the most kept whole
    status = _run(tmp_path, f"import sys; print({line!r}, file=sys.stderr); sys.exit(2)")
    assert status.reason == f"exit code 2: {line}"


def test_the_last_line_is_read_from_the_log_and_a_line_past_the_limit_is_marked_cut(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    assert last_log_line(log) is None
    log.write_text("first\nsecond line\n\n  \n", encoding="utf-8")
    assert last_log_line(log, limit=64) == "second line"
    log.write_text("x" * 100 + "the end\n", encoding="utf-8")
    assert last_log_line(log, limit=16) == "…xxxxxxxxthe end"  # its last 16 bytes


def test_a_trainer_past_its_timeout_is_killed_and_fails(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    status = _run(
        tmp_path,
        f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(600)
        """,
        timeout=1.0,
    )
    assert (status.phase, status.reason) == (JobPhase.FAILED, "timed out after 1 s")
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_command_that_cannot_start_fails_the_job(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "runs", [str(tmp_path / "no-such-trainer")])
    spec = _spec(tmp_path)
    executor.launch(spec)
    status = _settle(executor, spec)
    assert status.phase is JobPhase.FAILED
    assert status.reason is not None
    assert status.reason.startswith("cannot start the command: [Errno 2]")


def test_launching_twice_runs_the_job_once(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    body = f"""
        import os
        with open({str(starts)!r}, "a") as f:
            f.write("x")
        open(os.environ["DRIFTWATCH_RESULT_PATH"], "w").write("{{}}")
        """
    executor = _executor(tmp_path, body)
    spec = _spec(tmp_path)
    executor.launch(spec)
    executor.launch(spec)
    assert _settle(executor, spec).phase is JobPhase.SUCCEEDED
    executor.launch(spec)
    again = _executor(tmp_path, body)
    again.launch(spec)
    assert again.observe(spec).phase is JobPhase.SUCCEEDED
    assert starts.read_text() == "x"


def test_a_job_never_launched_is_missing_and_a_cancelled_one_fails(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    executor = _executor(
        tmp_path,
        f"""
        import os, time
        open({str(pid_file)!r} + ".tmp", "w").write(str(os.getpid()))
        os.rename({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
        time.sleep(600)
        """,
    )
    spec = _spec(tmp_path)
    assert executor.observe(spec).phase is JobPhase.MISSING
    executor.launch(spec)
    give_up = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < give_up
        time.sleep(0.05)
    assert executor.observe(spec).phase is JobPhase.RUNNING
    executor.cancel(spec)
    executor.cancel(spec)
    cancelled = _settle(executor, spec)
    assert (cancelled.phase, cancelled.reason) == (JobPhase.FAILED, "cancelled")
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    executor.launch(spec)
    assert executor.observe(spec).reason == "cancelled"
    never = _spec(tmp_path, run_id=2)
    executor.cancel(never)
    executor.launch(never)
    assert executor.observe(never).reason == "cancelled"


_PARENT = """
import sys, time
from datetime import timedelta
from retrain.executors import JobSpec, LocalExecutor, Mode
spec = JobSpec(1, "fraud", Mode.TRAIN, "data", "out", timedelta(seconds=120))
LocalExecutor(sys.argv[1], [sys.executable, sys.argv[2]]).launch(spec)
print("launched", flush=True)
time.sleep(600)
"""

_GATED_JOB = """
import os, sys, time
open(sys.argv[0] + ".pid", "w").write(str(os.getpid()))
with open(sys.argv[0] + ".starts", "a") as f:
    f.write("x")
while not os.path.exists(sys.argv[0] + ".go"):
    time.sleep(0.05)
open(os.environ["DRIFTWATCH_RESULT_PATH"], "w").write('{"model_uri": "m"}')
"""


def _launch_from_a_killed_parent(tmp_path: Path) -> tuple[Path, Path]:
    """A service process launches the gated job and is SIGKILLed while the job waits."""
    script = tmp_path / "job.py"
    script.write_text(_GATED_JOB, encoding="utf-8")
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "runs"), str(script)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    assert parent.stdout.readline() == "launched\n"
    starts = Path(f"{script}.starts")
    give_up = time.monotonic() + 60
    while not starts.exists():  # the job is running before the service dies
        assert time.monotonic() < give_up
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    return script, starts


def test_a_job_running_when_the_service_is_killed_is_adopted_not_relaunched(
    tmp_path: Path,
) -> None:
    script, starts = _launch_from_a_killed_parent(tmp_path)
    spec = JobSpec(1, "fraud", Mode.TRAIN, "data", "out", timedelta(seconds=120))
    restarted = LocalExecutor(tmp_path / "runs", [sys.executable, str(script)])
    assert restarted.observe(spec).phase is JobPhase.RUNNING
    restarted.launch(spec)
    Path(f"{script}.go").touch()
    status = _settle(restarted, spec)
    assert (status.phase, status.result) == (JobPhase.SUCCEEDED, {"model_uri": "m"})
    assert starts.read_text() == "x"


def test_a_job_that_finished_while_no_service_ran_is_observed(tmp_path: Path) -> None:
    script, starts = _launch_from_a_killed_parent(tmp_path)
    Path(f"{script}.go").touch()
    exit_file = tmp_path / "runs" / "driftwatch-fraud-1-train" / "exit.json"
    give_up = time.monotonic() + 60
    while not exit_file.exists():
        assert time.monotonic() < give_up
        time.sleep(0.05)
    spec = JobSpec(1, "fraud", Mode.TRAIN, "data", "out", timedelta(seconds=120))
    restarted = LocalExecutor(tmp_path / "runs", [sys.executable, str(script)])
    restarted.launch(spec)
    status = restarted.observe(spec)
    assert (status.phase, status.result) == (JobPhase.SUCCEEDED, {"model_uri": "m"})
    assert starts.read_text() == "x"


def test_a_wrapper_killed_with_its_job_fails_the_job(tmp_path: Path) -> None:
    script, _ = _launch_from_a_killed_parent(tmp_path)
    job_dir = tmp_path / "runs" / "driftwatch-fraud-1-train"
    wrapper = json.loads((job_dir / "started").read_text())["pid"]
    job = int(Path(f"{script}.pid").read_text())
    for pid in (wrapper, job):  # the machine or container went down with the service
        os.kill(pid, signal.SIGKILL)
    spec = JobSpec(1, "fraud", Mode.TRAIN, "data", "out", timedelta(seconds=120))
    restarted = LocalExecutor(tmp_path / "runs", [sys.executable, str(script)])
    status = _settle(restarted, spec)
    assert status.phase is JobPhase.FAILED
    assert status.reason == "the job's wrapper died without recording an exit status"
    restarted.launch(spec)
    assert restarted.observe(spec).reason == status.reason


def test_a_directory_of_another_job_with_the_same_name_is_not_adopted(tmp_path: Path) -> None:
    executor = _executor(tmp_path, "import os; open(os.environ['DRIFTWATCH_RESULT_PATH'], 'w')")
    spec = _spec(tmp_path)
    executor.launch(spec)
    assert (
        _settle(executor, spec).reason
        == "result is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    )
    other = JobSpec(1, "fraud", Mode.TRAIN, "elsewhere.parquet", "out", spec.timeout)
    with pytest.raises(
        ExecutorError, match="holds another job named driftwatch-fraud-1-train"
    ) as err:
        executor.launch(other)
    assert not err.value.retriable


def test_job_names_are_deterministic_and_dns_safe(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    assert spec.name == "driftwatch-fraud-1-train"
    long = JobSpec(123456, "Fraud_Model." + "x" * 80, Mode.VALIDATE, "d", "o", timedelta(seconds=1))
    assert long.name.startswith("driftwatch-fraud-model-xx")
    assert long.name.endswith("x-123456-validate")
    assert len(long.name) == 63


def test_the_factory_names_the_key_on_an_unknown_executor(tmp_path: Path) -> None:
    class Settings:
        workdir = tmp_path
        command = ("python", "-m", "retrain.trainer")

    local = make_executor("local", Settings())
    assert isinstance(local, LocalExecutor)
    assert local.command == [sys.executable, "-m", "retrain.trainer"]
    assert isinstance(make_executor("fake", Settings()), FakeExecutor)
    with pytest.raises(ExecutorError, match=r"retrain\.executor: unknown executor 'k8s'") as err:
        make_executor("k8s", Settings())
    assert not err.value.retriable


SECRETS = {
    "PGPASSWORD": "pg-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
    "PAGER_ROUTING_KEY": "a key an alert channel reads through secret_env",
    "DRIFTWATCH_DATABASE__URL": "postgresql://u:pw@db/x",
}


def test_the_job_environment_is_an_allow_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unrelated secrets of the service never reach the job; the base, the contract and
    what the model's config passes do."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRAINER_TOKEN", "passed on purpose")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    executor = _executor(
        tmp_path,
        """
        import json, os
        with open(os.environ["DRIFTWATCH_RESULT_PATH"], "w") as out:
            json.dump({"names": sorted(os.environ)}, out)
        """,
    )
    spec = dataclasses.replace(_spec(tmp_path), pass_env=("TRAINER_TOKEN",))
    executor.launch(spec)
    status = _settle(executor, spec)
    assert status.phase is JobPhase.SUCCEEDED and status.result is not None, status
    names = set(status.result["names"])
    assert names.isdisjoint(SECRETS)
    assert {"TRAINER_TOKEN", "LC_ALL", "PATH", "DRIFTWATCH_RUN_ID", "DRIFTWATCH_TASK"} <= names
    contract = set(spec.contract_env("r"))
    others = names - contract - {"TRAINER_TOKEN"}
    assert all(n in BASE_ENV or n.startswith("LC_") for n in others), others - BASE_ENV


def test_a_huge_result_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """256 MiB (sparse: cheap to write) of result: only the first 4097 bytes are read."""
    executor = _executor(
        tmp_path,
        """
        import os
        with open(os.environ["DRIFTWATCH_RESULT_PATH"], "wb") as out:
            out.truncate(256 * 2**20)
        """,
    )
    spec = _spec(tmp_path)
    executor.launch(spec)
    ended = _settle(executor, spec)  # the job ends; judging it again is what is measured
    assert ended.phase is JobPhase.FAILED
    tracemalloc.start()
    try:
        status = executor.observe(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status.reason == f"result is {256 * 2**20} bytes, more than 4096"
    assert peak < 2**20, peak
