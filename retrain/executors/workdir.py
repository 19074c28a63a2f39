"""Clean-up of ``retrain.workdir``: what a finished run left there is deleted.

A run leaves two kinds of directories directly under the workdir: its exported
training data, ``{model}-{run}`` (:meth:`retrain.settings.LoopSettings.data_path`),
and with the local executor one directory per job,
``driftwatch-{model}-{run}-{mode}``. Both are needed until the run is final
(validation reads the data, the loop reads each job's result); after that the run's
row in SQL holds all it needs (log tails, gates, the registered version). So a
directory is deleted once its run is final (``accepted``, ``rejected``,
``failed``, ``cancelled``) and finished more than ``keep`` ago
(``retrain.keep_finished``, for looking at a run's files by hand). Anything else
stays: names of another shape, symlinks, runs that are not final or that SQL does
not know, and job directories whose wrapper still holds its lock (a cancelled job
that is stopping).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

from retrain.executors.local import wrapper_alive

log = logging.getLogger(__name__)
_JOB = re.compile(r"driftwatch-.+-(?P<run>\d+)-(?:train|validate)")
_DATA = re.compile(r".+-(?P<run>\d+)")

# The finish time of each final run among the ids asked about; runs not final are absent.
FinishedAt = Callable[[Iterable[int]], Mapping[int, datetime]]


def run_of(name: str) -> int | None:
    """The run a workdir entry belongs to, by its name; None for any other name."""
    match = _JOB.fullmatch(name) or _DATA.fullmatch(name)
    return int(match["run"]) if match else None


def sweep(workdir: Path, finished_at: FinishedAt, now: datetime, keep: timedelta) -> list[str]:
    """Delete the directories of runs final for more than ``keep``; return their names."""
    try:
        entries = [e for e in workdir.iterdir() if e.is_dir() and not e.is_symlink()]
    except FileNotFoundError:
        return []
    owners = {e: run for e in entries if (run := run_of(e.name)) is not None}
    if not owners:
        return []
    finished = finished_at(set(owners.values()))
    deleted: list[str] = []
    for entry, run in sorted(owners.items()):
        at = finished.get(run)
        if at is None or now - at < keep:
            continue
        if _JOB.fullmatch(entry.name) and wrapper_alive(entry):
            continue
        try:
            shutil.rmtree(entry)
        except OSError as exc:  # the next tick tries again; nothing depends on it
            log.warning("cannot delete %s of finished run %d: %s", entry, run, exc)
            continue
        deleted.append(entry.name)
    if deleted:
        log.info("deleted the files of finished runs in %s: %s", workdir, ", ".join(deleted))
    return deleted
