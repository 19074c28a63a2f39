"""Leader election on PostgreSQL: a session-level advisory lock on a dedicated connection.

The lock lives as long as the database session that took it, so the connection
is its own, never one of the pool that serves ticks and requests (a pooled
connection goes back to the pool and would carry the lock to whoever borrows it
next). Every ``retry_period`` a follower tries ``pg_try_advisory_lock`` (never
waiting), and the leader checks in ``pg_locks`` that its session still holds it:
a dropped connection, a terminated backend or a pooler that swapped the session
ends the leadership at that check. Between checks, leadership lapses by itself
once the last good check is ``renew_deadline`` old, so a check that hangs on a
dead network never leaves a stale leader.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

_STOP_WAIT = 2.0  # seconds; within the service's shutdown budget

_HOLDS = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND classid::bigint = :high AND objid::bigint = :low"
    " AND objsubid = 1)"
)


def lock_key(name: str) -> int:
    """The advisory lock's 64-bit key for a lease name (stable across versions)."""
    digest = hashlib.sha256(f"driftwatch-leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_engine(url: str, connect_timeout: float) -> Engine:
    """An engine that opens one fresh connection per :meth:`Engine.connect` (no pool),
    in autocommit so that no transaction stays open beside the lock."""
    timeout = max(1, round(connect_timeout))
    return create_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={
            "connect_timeout": timeout,
            "application_name": "driftwatch-leader",
            # A peer that vanished without a FIN is noticed by the kernel, not never.
            "keepalives": 1,
            "keepalives_idle": timeout,
            "keepalives_interval": timeout,
            "keepalives_count": 3,
            "tcp_user_timeout": timeout * 1000,
        },
    )


class AdvisoryLockElector:
    backend = "postgres"

    def __init__(
        self,
        engine: Engine,
        name: str,
        retry_period: float,
        renew_deadline: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.key = lock_key(name)
        self._retry = retry_period
        self._deadline = renew_deadline
        self._clock = clock
        self._conn: Connection | None = None
        self._held = False
        self._checked = float("-inf")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-postgres", daemon=True)

    def is_leader(self) -> bool:
        return self._held and self._clock() - self._checked < self._deadline

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            # It wakes at once and releases, unless a query is in flight; if that query
            # hangs, the process exits anyway and the server ends the session and its lock.
            self._thread.join(timeout=_STOP_WAIT)
        elif self._thread.ident is None:  # never started: stepped by hand
            self._release()
        self._engine.dispose()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.step()
            self._stopping.wait(self._retry)
        self._release()

    def step(self) -> None:
        """One campaign step: take the lock, or check that it is still held."""
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            if self._held:
                held = self._conn.execute(
                    _HOLDS, {"high": (self.key >> 32) & 0xFFFFFFFF, "low": self.key & 0xFFFFFFFF}
                ).scalar_one()
                if not held:
                    self._lose("the session no longer holds the advisory lock")
                    return
            else:
                got = self._conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                ).scalar_one()
                if not got:
                    return
                self._held = True
                log.info("leader: took the PostgreSQL advisory lock %d", self.key)
            self._checked = self._clock()
        except SQLAlchemyError as exc:
            self._lose(f"the lock's connection failed: {exc.__class__.__name__}: {exc}")

    def _lose(self, why: str) -> None:
        if self._held:
            log.warning("leader: leadership lost, %s", why)
        else:
            log.debug("leader: campaign step failed, %s", why)
        self._held = False
        self._close()

    def _release(self) -> None:
        if self._held and self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                log.info("leader: released the advisory lock")
            except SQLAlchemyError as exc:  # closing the session below releases it as well
                log.warning("leader: releasing the advisory lock failed: %s", exc)
        self._held = False
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.invalidate()  # never back to a pool: its session may hold the lock
            conn.close()
        except SQLAlchemyError:
            log.debug("leader: closing the lock's connection failed", exc_info=True)
