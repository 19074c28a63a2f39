"""Errors of the retraining half.

Everything raised out of :mod:`retrain` derives from :class:`RetrainError`, so the
service can catch one type; foreign errors (OSError from a subprocess or a file
system, skops' refusals) are translated where they are met. Other modules of
:mod:`retrain` add their own subclasses here.

RetrainError
├── ExecutorError      a job could not be launched, observed or cancelled (``retriable``)
├── ArtifactError      a model artifact is missing, tampered with or holds untrusted types
├── TrainerError       the reference trainer cannot work on its input (bad data, bad env)
├── RunRefused         a run cannot start: the model has no retrain settings
├── MalformedResult    a job's result lacks a field the loop needs (a metric, the artifact)
├── RouterError        a router could not apply or read a traffic split (``retriable``)
└── RolloutRefused     a rollout cannot start, resume or abort as asked
"""

from __future__ import annotations


class RetrainError(Exception):
    """Base of every error raised by :mod:`retrain`."""


class ExecutorError(RetrainError):
    """The executor's own infrastructure failed (cannot spawn, API down, bad config).

    ``retriable`` says whether the same call may succeed later (a transient
    outage) or never will (a misconfiguration); a job that ran and failed is not
    an error but a ``FAILED`` status.
    """

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class ArtifactError(RetrainError):
    """A model artifact cannot be stored or loaded safely."""


class TrainerError(RetrainError):
    """The trainer cannot train or validate on what it was given."""


class RunRefused(RetrainError):
    """A run cannot be started as asked."""


class MalformedResult(RetrainError):
    """A job's result lacks what the loop needs (a metric, the holdout size, an artifact)."""


class RouterError(RetrainError):
    """A router could not apply or read a traffic split (:mod:`retrain.rollout`).

    ``retriable``: the same call may succeed on a later tick (an API outage, a
    conflict on a concurrent update), or it never will (the object is missing, the
    config names the wrong route, RBAC forbids it).
    """

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


class RolloutRefused(RetrainError):
    """A rollout cannot be started, paused, resumed, promoted or aborted as asked (no
    production version, a candidate not awaiting one, an active rollout of the model
    already, a phase the operation does not apply to)."""


def yaml_problem(exc: Exception) -> str:
    """What a YAML parser refused and where, without the text around it.

    PyYAML's own message quotes the offending line, which in a configuration or a
    Job template may hold a credential; error messages are logged and printed.
    """
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
    return f"{problem or type(exc).__name__}{where}"
