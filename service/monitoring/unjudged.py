"""Windows whose stored aggregates cannot be read: skipped, so that they hold back no other.

Both evaluators judge windows oldest first, model after model, in one tick. A
window row that does not decode (a bit flip, a format a newer release wrote before
a rollback of the code) or whose partition rows do not merge raises
:class:`drift.errors.DriftError`; uncaught, it failed the tick at the same window
every time, and no later window of any model was ever judged again. The window is
skipped instead and tried again at every tick (a newer release's row becomes
readable once that release runs), but named in the log and counted only once.
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
        self._named: dict[tuple[str, str, datetime], None] = {}

    def skip(self, model: str, version: str, start: datetime, exc: DriftError) -> None:
        """Record that the window cannot be judged now; log and count it the first time."""
        key = (model, version, start)
        if key in self._named:
            return
        if len(self._named) >= MAX_REMEMBERED:
            del self._named[next(iter(self._named))]
        self._named[key] = None
        log.error(
            "%s window %s/%s at %s cannot be judged and is skipped (tried again every tick; "
            "other windows go on): %s",
            self.kind,
            model,
            version,
            start.isoformat(),
            exc,
        )
        if self._on_new is not None:
            self._on_new(model)
