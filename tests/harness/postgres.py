"""Throwaway PostgreSQL databases on the local server (or DRIFTWATCH_TEST_PG_URL)."""

from __future__ import annotations

import os
import queue
import threading
import uuid

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("DRIFTWATCH_TEST_PG_URL", DEFAULT_ADMIN_URL)


def reachable() -> str | None:
    """None if the server answers, else why not."""
    try:
        engine = create_engine(admin_url())
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means the same thing here: no server
        return str(exc).splitlines()[0]


class Databases:
    """Creates databases named driftwatch_test_* and drops them all by the end.

    A drop costs ~0.1 s of the server's time (PostgreSQL waits for every backend to
    close the files), so :meth:`drop_soon` hands a finished test's database to a
    thread that drops it while the next tests run, instead of all at the end.
    """

    def __init__(self) -> None:
        self._admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
        self._made: list[str] = []
        self._doomed: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._dropper = threading.Thread(target=self._drop_queued, name="pg-dropper", daemon=True)
        self._dropper.start()

    def create(self, template: str | None = None) -> str:
        name = f"driftwatch_test_{uuid.uuid4().hex[:12]}"
        clause = f" TEMPLATE {template}" if template else ""
        with self._admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}{clause}"))
        self._made.append(name)
        return make_url(admin_url()).set(database=name).render_as_string(hide_password=False)

    def drop_soon(self, url: str) -> None:
        """Drop the database of ``url`` in the background; :meth:`drop_all` waits for it."""
        name = make_url(url).database
        assert name in self._made, name
        self._made.remove(name)
        self._doomed.put(name)

    def drop_all(self) -> None:
        self._doomed.put(None)
        self._dropper.join()
        with self._admin.connect() as conn:
            for name in reversed(self._made):
                self._drop(conn, name)
        self._admin.dispose()

    def _drop_queued(self) -> None:
        with self._admin.connect() as conn:
            while (name := self._doomed.get()) is not None:
                self._drop(conn, name)

    @staticmethod
    def _drop(conn: Connection, name: str) -> None:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
