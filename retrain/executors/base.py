"""The executor protocol: how a retraining or validation job is launched and observed.

One module per backend (``local``, ``kubernetes``), a fake for tests, and a
factory keyed by ``retrain.executor``. Every call is idempotent: a job is
known by its deterministic :attr:`JobSpec.name`, so launching it twice adopts
the first launch, and a service restarted mid-run observes the job it left.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_MAX_NAME = 63


class Mode(StrEnum):
    TRAIN = "train"
    VALIDATE = "validate"


@dataclass(frozen=True)
class JobSpec:
    run_id: int
    model: str
    mode: Mode
    data_uri: str
    output_uri: str
    timeout: timedelta
    # Extra environment (validate: champion/candidate URIs and sha256s, task,
    # holdout share, slice feature).
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``driftwatch-<model>-<run>-<mode>``, DNS-safe and at most 63 characters.

        >>> JobSpec(7, "Fraud_EU", Mode.TRAIN, "d", "o", timedelta(hours=1)).name
        'driftwatch-fraud-eu-7-train'
        """
        model = _NOT_DNS.sub("-", self.model.lower()).strip("-") or "model"
        tail = f"-{self.run_id}-{self.mode}"
        room = _MAX_NAME - len("driftwatch-") - len(tail)
        return f"driftwatch-{model[:room].rstrip('-')}{tail}"


class JobPhase(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    MISSING = "missing"


@dataclass(frozen=True)
class JobStatus:
    phase: JobPhase
    reason: str | None = None
    log_tail: str | None = None
    result: Mapping[str, Any] | None = None


class Executor(Protocol):
    def launch(self, spec: JobSpec) -> None:
        """Start the job; a second launch of the same ``spec.name`` adopts, never starts twice."""
        ...

    def observe(self, spec: JobSpec) -> JobStatus:
        """The job's state: SUCCEEDED carries the parsed result, FAILED a reason and log tail."""
        ...

    def cancel(self, spec: JobSpec) -> None:
        """Stop the job if it runs; idempotent."""
        ...
