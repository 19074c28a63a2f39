"""One step per active run, rollout or model, none held back by another's failure.

A driver's tick steps every active run (rollout) in turn. Uncaught, an error of
one (its Job's API answering 500 every time, a bug its data sets off) ended the
tick there, and every run after it in the same order waited as long as it kept
failing: runs of other models never advanced. Each now gets its step; the first
error is raised again once all had theirs, so the scheduler still counts the tick
as failed and logs it, and the others are logged here, naming their run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


def step_each(
    ids: Iterable[K], step: Callable[[K], T], what: str
) -> tuple[dict[K, T], Exception | None]:
    """``step(id)`` for each id: the results of those that returned, and the first
    error (the others' are logged as warnings, naming ``what`` and the id)."""
    done: dict[K, T] = {}
    first: Exception | None = None
    for i in ids:
        try:
            done[i] = step(i)
        except Exception as exc:  # one run's failure is that run's; raised after the others
            if first is None:
                first = exc
            else:
                log.warning("%s %s: its step failed too: %s: %s", what, i, type(exc).__name__, exc)
    return done, first
