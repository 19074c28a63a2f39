"""Errors raised by the retraining loop.

    RetrainError            retraining cannot proceed as asked
    ├── ExecutorError       the executor's own infrastructure failed (cannot spawn, API down);
    │                       ``retriable`` says whether the next tick may succeed
    ├── ArtifactError       a model artifact cannot be read, or its sha256 is not the registered one
    ├── RegistryError       the model registry refused a change (unknown model or version, a
    │                       version registered twice with other content)
    ├── RunRefused          a run cannot start: one is active, or the model is not set up for it
    └── MalformedResult     a job's result lacks a field the loop needs

A job that fails (exit code, no result, timeout) is not an error here: it is a
run outcome, stored as the run's failure reason.
"""

from __future__ import annotations


class RetrainError(Exception):
    retriable: bool = False


class ExecutorError(RetrainError):
    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class ArtifactError(RetrainError):
    pass


class RegistryError(RetrainError):
    pass


class RunRefused(RetrainError):
    pass


class MalformedResult(RetrainError):
    """A job's result lacks what the loop needs (a metric, the holdout size, an artifact)."""
