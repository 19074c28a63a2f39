"""The fake executor behaves as the protocol says, so lifecycle tests can trust it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retrain.errors import ExecutorError
from retrain.executors import Executor, FakeExecutor, JobPhase, JobSpec, JobStatus, Mode

SPEC = JobSpec(4, "fraud", Mode.VALIDATE, "data", "out", timedelta(minutes=1))


def test_a_job_runs_for_its_ticks_then_takes_its_outcome() -> None:
    fake = FakeExecutor(ticks=2)
    executor: Executor = fake
    assert executor.observe(SPEC).phase is JobPhase.MISSING
    executor.launch(SPEC)
    executor.launch(SPEC)
    assert [executor.observe(SPEC).phase for _ in range(3)] == [
        JobPhase.RUNNING,
        JobPhase.RUNNING,
        JobPhase.SUCCEEDED,
    ]
    assert fake.starts == {"driftwatch-fraud-4-validate": 1}


def test_scripted_outcomes_and_cancel() -> None:
    fake = FakeExecutor(outcome=lambda spec: JobStatus(JobPhase.FAILED, f"{spec.mode} broke"))
    fake.launch(SPEC)
    assert fake.observe(SPEC).phase is JobPhase.RUNNING
    assert fake.observe(SPEC) == JobStatus(JobPhase.FAILED, "validate broke")
    fake.succeed(SPEC.name, {"holdout_rows": 3}, log_tail="ok")
    assert fake.observe(SPEC) == JobStatus(JobPhase.SUCCEEDED, None, "ok", {"holdout_rows": 3})
    fake.fail(SPEC.name, "exit code 2")
    assert fake.observe(SPEC).reason == "exit code 2"
    fake.cancel(SPEC)
    fake.cancel(SPEC)
    assert fake.observe(SPEC) == JobStatus(JobPhase.FAILED, "cancelled")


def test_an_infrastructure_error_is_raised_once() -> None:
    fake = FakeExecutor()
    fake.fail_next_launch = ExecutorError("API down", retriable=True)
    with pytest.raises(ExecutorError, match="API down"):
        fake.launch(SPEC)
    fake.launch(SPEC)
    assert fake.starts[SPEC.name] == 1
