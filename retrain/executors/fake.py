"""The ``fake`` executor: jobs that live in memory, for unit tests of the run lifecycle.

A launched job is ``RUNNING`` for ``ticks`` observations, then takes the outcome
the test scripted for it (by default a success with an empty result). It keeps
every launch, so a test can check that a job was started exactly once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from retrain.errors import ExecutorError
from retrain.executors.base import JobPhase, JobSpec, JobStatus

Outcome = Callable[[JobSpec], JobStatus]


def _succeed(spec: JobSpec) -> JobStatus:
    return JobStatus(JobPhase.SUCCEEDED, result={})


class FakeExecutor:
    """In-process jobs with scripted outcomes (see the module docstring)."""

    def __init__(self, outcome: Outcome = _succeed, ticks: int = 1) -> None:
        self.outcome = outcome
        self.ticks = ticks
        self.starts: Counter[str] = Counter()  # name -> how many times a job really started
        self.cancelled: set[str] = set()
        self.fail_next_launch: ExecutorError | None = None
        self._scripted: dict[str, JobStatus] = {}
        self._observed: Counter[str] = Counter()

    def succeed(self, name: str, result: Mapping[str, Any], log_tail: str | None = None) -> None:
        """Script the job ``name`` to succeed with ``result`` (whenever it is observed next)."""
        self._scripted[name] = JobStatus(JobPhase.SUCCEEDED, None, log_tail, dict(result))

    def fail(self, name: str, reason: str, log_tail: str | None = None) -> None:
        """Script the job ``name`` to fail with ``reason``."""
        self._scripted[name] = JobStatus(JobPhase.FAILED, reason, log_tail)

    def launch(self, spec: JobSpec) -> bool:
        if self.fail_next_launch is not None:
            error, self.fail_next_launch = self.fail_next_launch, None
            raise error
        if spec.name not in self.starts and spec.name not in self.cancelled:
            self.starts[spec.name] += 1
        return True

    def observe(self, spec: JobSpec) -> JobStatus:
        name = spec.name
        if name in self.cancelled:
            return JobStatus(JobPhase.FAILED, "cancelled")
        if name not in self.starts:
            return JobStatus(JobPhase.MISSING)
        if name in self._scripted:
            return self._scripted[name]
        self._observed[name] += 1
        if self._observed[name] <= self.ticks:
            return JobStatus(JobPhase.RUNNING)
        return self.outcome(spec)

    def cancel(self, spec: JobSpec) -> None:
        self.cancelled.add(spec.name)

    def close(self) -> None:
        return None
