"""Throwaway PostgreSQL databases on the local server (or DRIFTWATCH_TEST_PG_URL)."""

from __future__ import annotations

import os
import uuid

from sqlalchemy import create_engine, text
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
    """Creates databases named driftwatch_test_* and drops them all at the end."""

    def __init__(self) -> None:
        self._admin = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
        self._made: list[str] = []

    def create(self, template: str | None = None) -> str:
        name = f"driftwatch_test_{uuid.uuid4().hex[:12]}"
        clause = f" TEMPLATE {template}" if template else ""
        with self._admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}{clause}"))
        self._made.append(name)
        return make_url(admin_url()).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin.connect() as conn:
            for name in reversed(self._made):
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        self._admin.dispose()
