"""Where a run's export runs: on the tick's own thread, or on threads beside it.

An export can take minutes. On the tick's thread (:class:`InlineExports`) every
other run waits for it: their jobs' results are read, their next jobs launched
and their timeouts noticed only once it is done. That suits ``driftwatch retrain
--wait``, which drives one run; the service uses :class:`BackgroundExports`,
where a tick starts the export on a thread of its own and goes on with the other
runs, and a later tick collects the outcome.

The export's own guarantees (:func:`retrain.phases.export`) do not depend on the
thread: its file appears by a rename, under a ``flock``, and a process that dies
mid-export (the threads are daemons, so a stopping service does not wait for
one) leaves a partial file and no data file, and the next tick exports again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from retrain.lifecycle import ExportFailure

log = logging.getLogger(__name__)

Work = Callable[[], ExportFailure | None]


@dataclass(frozen=True)
class Finished:
    """An export that ended: ``failure`` None when its file is in place."""

    failure: ExportFailure | None


class Exports(Protocol):
    def run(self, run_id: int, work: Work) -> Finished | None:
        """The outcome of the run's export, started now if it is not under way; None
        while it runs (or waits for its turn)."""
        ...

    def keep_only(self, run_ids: Collection[int]) -> None:
        """Forget outcomes of runs other than these (runs no longer active)."""
        ...


class InlineExports:
    """Each export runs to its end on the caller's thread."""

    def run(self, run_id: int, work: Work) -> Finished | None:
        return Finished(work())

    def keep_only(self, run_ids: Collection[int]) -> None:
        pass


class BackgroundExports:
    """Each export on a daemon thread of its own, at most ``limit`` at once.

    The limit is there because an export holds a share of the model's archive in
    memory while it writes; runs beyond it start theirs on a later tick, when a
    thread is free. An export that raised (a bug: the exporter's expected errors
    are :class:`db.errors.StoreError` and come back as an ``ExportFailure``) raises
    again from :meth:`run` on the tick that collects it, so the tick reports it
    like any other step's error; the tick after starts the export again.
    """

    def __init__(self, limit: int = 2) -> None:
        if limit < 1:
            raise ValueError("at least one export must be able to run")
        self.limit = limit
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._ended: dict[int, Finished | Exception] = {}

    def run(self, run_id: int, work: Work) -> Finished | None:
        with self._lock:
            ended = self._ended.pop(run_id, None)
            if ended is None:
                if run_id in self._running or len(self._running) >= self.limit:
                    return None
                self._running.add(run_id)
        if isinstance(ended, Exception):
            raise ended
        if ended is not None:
            return ended
        thread = threading.Thread(
            target=self._work, args=(run_id, work), name=f"export-run-{run_id}", daemon=True
        )
        try:
            thread.start()
        except BaseException:  # no thread to end it, so the run must not stay "running"
            with self._lock:
                self._running.discard(run_id)
            raise
        log.info("run %d: exporting its training data in the background", run_id)
        return None

    def _work(self, run_id: int, work: Work) -> None:
        outcome: Finished | Exception
        try:
            outcome = Finished(work())
        except Exception as exc:  # handed to the tick that collects it, which raises it
            outcome = exc
        with self._lock:
            self._running.discard(run_id)
            self._ended[run_id] = outcome

    def keep_only(self, run_ids: Collection[int]) -> None:
        with self._lock:
            for run_id in [r for r in self._ended if r not in run_ids]:
                del self._ended[run_id]
