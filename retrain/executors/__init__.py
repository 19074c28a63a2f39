"""Executors run a retraining run's jobs; ``retrain.executor`` picks the backend.

Every backend implements :class:`~retrain.executors.base.Executor`: ``local``
(subprocesses, the default), ``kubernetes`` (Jobs on a cluster, settings under
``retrain.kubernetes``) and ``fake`` (in memory, for tests). The factory
fails loudly on any other name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol

from retrain.errors import ExecutorError
from retrain.executors.base import (
    RESULT_LIMIT_BYTES,
    Executor,
    JobPhase,
    JobSpec,
    JobStatus,
    Mode,
)
from retrain.executors.fake import FakeExecutor
from retrain.executors.local import LocalExecutor

EXECUTORS = ("local", "kubernetes", "fake")

__all__ = [
    "EXECUTORS",
    "RESULT_LIMIT_BYTES",
    "Executor",
    "ExecutorSettings",
    "FakeExecutor",
    "JobPhase",
    "JobSpec",
    "JobStatus",
    "LocalExecutor",
    "Mode",
    "make_executor",
]


class ExecutorSettings(Protocol):
    """What the factory reads from the ``retrain:`` settings."""

    @property
    def workdir(self) -> str | os.PathLike[str]: ...

    @property
    def command(self) -> Sequence[str]: ...


def make_executor(
    name: str,
    settings: ExecutorSettings,
    *,
    on_watch_error: Callable[[str], None] | None = None,
) -> Executor:
    """The executor called ``name``; an unknown name is an error that names the key.
    ``on_watch_error`` hears of every failed list or watch of the ``kubernetes`` backend."""
    if name == "local":
        return LocalExecutor(settings.workdir, settings.command)
    if name == "fake":
        return FakeExecutor()
    if name == "kubernetes":
        # Imported here: the client is heavy and only this backend needs it.
        from retrain.executors.kubernetes_connect import connect

        cluster = getattr(settings, "kubernetes", None)
        if cluster is None:
            raise ExecutorError(
                "retrain.kubernetes: required when retrain.executor is kubernetes",
                retriable=False,
            )
        return connect(cluster, on_watch_error=on_watch_error)
    raise ExecutorError(
        f"retrain.executor: unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}",
        retriable=False,
    )
