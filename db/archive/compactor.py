"""The archive writer's compactions, on a thread of their own.

A writer compacts each table every ``compact_every`` appends to it (see
:mod:`db.archive.writer` for why it cannot wait for the hourly maintenance).
Run inside the append that asked for it, a compaction held up the flush that
made it: 0.3 s at 2,000 events a flush on a local disk (bench/archive_compaction.py),
longer on object storage, and the loop waits for its appends before its SQL
commit. Here it runs beside the appends instead. Delta lets the two commit
concurrently: an optimize only marks files it rewrote as removed, without changing
data or application transactions, so an append committed meanwhile is rebased over
it, and it over the append (both directions are in the tests).

One daemon thread serves every table in the order asked, each table at most once at
a time (an append that comes due while its table's compaction is queued or under way
asks again at the next one). deltalake releases the GIL while it rewrites files, so
the loop keeps reading meanwhile. The writer's own snapshot of the table goes to the
compaction when it starts (a request in the queue holds none) and comes back when it
ends: neither thread touches a ``DeltaTable`` the other holds (the writer's lock per
table), and nothing is loaded twice. On object storage (bench/archive_requests.py) that
is 8.90 requests an append with a compaction every 50, against 10.04 when the flush
compacted and the next append loaded the table afresh. An append that runs into its
table's compaction under way loads the table itself instead of waiting (13.27 requests
an append with flushes back to back): that takes compactions longer than the time
between two flushes, so large flushes, whose requests are few per event. A compaction
that fails is logged and counted, the table keeps its small files, and the next one,
or the leader's maintenance job, compacts them. A process that stops waits a bounded
time for the compaction under way (:meth:`Compactor.close`); one cut short leaves
only unreferenced files, which the maintenance job's vacuum deletes.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from deltalake import DeltaTable, PostCommitHookProperties
from deltalake.exceptions import DeltaError

from db.archive.errors import ArchiveError
from db.archive.settings import ArchiveSettings

log = logging.getLogger(__name__)
# Compactions delete the log entries a checkpoint made expendable (appends skip that).
_HOOKS = PostCommitHookProperties(cleanup_expired_logs=True)


class Compactor:
    """Compacts archive tables on a thread of its own, each table at most once at a time.

    A compaction starting takes the writer's snapshot of its table (the latest
    version: the compaction reads nothing to find the files), and the writer takes it
    back with :meth:`take` once the compaction has ended; a request waiting in the
    queue holds nothing. ``failed`` is called for each compaction that failed.
    """

    def __init__(self, settings: ArchiveSettings, failed: Callable[[], None]) -> None:
        self.settings = settings
        self._failed = failed
        self._queue: deque[tuple[str, Callable[[], DeltaTable | None]]] = deque()
        self._busy: set[str] = set()  # queued or running
        self._done: dict[str, DeltaTable] = {}  # snapshots to hand back, by table
        self._closed = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def idle(self, uri: str) -> bool:
        """No compaction of ``uri`` is queued or running."""
        with self._changed:
            return uri not in self._busy

    def request(self, uri: str, snapshot: Callable[[], DeltaTable | None]) -> None:
        """Compact ``uri`` soon, on the compaction thread (started at the first request),
        from what ``snapshot()`` hands over when it starts: the caller's snapshot, which
        the caller then no longer uses (None: no such table). Only when :meth:`idle`;
        ignored once closed."""
        with self._changed:
            if self._closed or uri in self._busy:
                return
            self._done.pop(uri, None)
            self._queue.append((uri, snapshot))
            self._busy.add(uri)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="archive-compaction", daemon=True
                )
                self._thread.start()
            self._changed.notify_all()

    def take(self, uri: str) -> DeltaTable | None:
        """The snapshot a finished compaction of ``uri`` hands back, once; None if there
        is none (none asked for, still under way, or failed)."""
        with self._changed:
            return self._done.pop(uri, None)

    def compact(
        self, uri: str, snapshot: Callable[[], DeltaTable | None]
    ) -> tuple[int, DeltaTable | None]:
        """Compact ``uri`` now, on this thread, from what ``snapshot()`` hands over (None:
        no such table): how many files it replaced, and the snapshot at the compaction's
        commit (0 and None when it failed, which is logged and counted)."""
        try:
            table = snapshot()
            if table is None:
                return 0, None
            done = self._optimize(table)
        # Anything: on the compaction thread an escaped error would end every later one.
        except Exception as exc:
            known = isinstance(exc, (DeltaError, OSError, ArchiveError))
            log.warning("compacting %s failed: %s", uri, exc if known else repr(exc))
            self._failed()
            return 0, None
        removed = done.get("numFilesRemoved")
        return (removed if isinstance(removed, int) else 0), table

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no compaction is queued or running; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._busy, timeout)

    def close(self, timeout: float) -> bool:
        """Drop the queued compactions and wait up to ``timeout`` seconds for the one
        under way; False if it was still running then. Later requests are ignored."""
        with self._changed:
            self._closed = True
            for uri, _ in self._queue:
                self._busy.discard(uri)
            self._queue.clear()
            self._changed.notify_all()
            return self._changed.wait_for(lambda: not self._busy, timeout)

    def _serve(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                uri, snapshot = self._queue.popleft()
            back = None
            try:
                _, back = self.compact(uri, snapshot)
            finally:
                with self._changed:
                    if back is not None:
                        self._done[uri] = back
                    self._busy.discard(uri)
                    self._changed.notify_all()

    def _optimize(self, table: DeltaTable) -> dict[str, object]:
        return table.optimize.compact(
            target_size=self.settings.compact_target_bytes, post_commithook_properties=_HOOKS
        )
