"""Windows whose stored aggregates cannot be read: skipped, so that they hold back no other.

Both evaluators judge windows oldest first, model after model, in one tick. A
window row that does not decode (a bit flip, a format a newer release wrote before
a rollback of the code) or whose partition rows do not merge raises
:class:`drift.errors.DriftError`; uncaught, it failed the tick at the same window
every time, and no later window of any model was ever judged again. The window is
skipped instead and tried again at every tick (a newer release's row becomes
readable once that release runs), but named in the log and counted only once.

The late-label join (:mod:`service.monitoring.late_labels`) merges its pairs into
those rows and revises the windows' reports: a batch that meets such a row is
held (its partition's cursor stays, the batch is read again every run) while the
other partitions and models go on, and is named and counted the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from drift.errors import DriftError

log = logging.getLogger(__name__)

# Windows remembered as already named; past it the oldest is forgotten (and named again
# if it still fails), which bounds the memory a flood of unreadable rows can take.
MAX_REMEMBERED = 10_000


class Unjudged:
    """The windows of one kind of report (``drift``, ``performance``) skipped so far."""

    def __init__(self, kind: str, on_new: Callable[[str], None] | None = None) -> None:
        self.kind = kind
        self._on_new = on_new
        self._named: dict[tuple[str, str, object], None] = {}

    def skip(self, model: str, version: str, start: datetime, exc: DriftError) -> None:
        """Record that the window cannot be judged now; log and count it the first time."""
        self._name(
            (model, version, start),
            f"{self.kind} window {model}/{version} at {start.isoformat()} cannot be judged "
            f"and is skipped (tried again every tick; other windows go on): {exc}",
        )

    def hold(self, model: str, partition: int, offset: int, exc: DriftError) -> None:
        """Record that the late-label batch of ``model``'s labels ``partition`` from
        ``offset`` cannot be committed now; log and count it the first time."""
        self._name(
            (model, f"partition {partition}", offset),
            f"late labels of {model}[{partition}] from offset {offset} are held (read again "
            f"every run; other partitions go on): {exc}",
        )

    def _name(self, key: tuple[str, str, object], message: str) -> None:
        """Log ``message`` and count ``key``'s model, the first time ``key`` is seen."""
        if key in self._named:
            return
        if len(self._named) >= MAX_REMEMBERED:
            del self._named[next(iter(self._named))]
        self._named[key] = None
        log.error("%s", message)
        if self._on_new is not None:
            self._on_new(key[0])
