"""Engine and session factory with the settings a long-running consumer needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

# Imported for its effect: every table in Base.metadata, so each foreign key resolves on flush.
from db import tables  # noqa: F401
from db.errors import translate

# What bounds each wait on PostgreSQL, unless the URL sets it otherwise: a lock wait (another
# replica's flush holding a partition's advisory lock, a migration's ALTER) fails after
# a minute with lock_not_available, which the callers retry; a transaction left idle
# (a client hung while holding locks) is ended by the server; a peer gone without a FIN
# (a network cut) is noticed by the kernel within a minute, not the ~2 h of its default
# keepalive. No statement_timeout: a migration or a retention delete may rightly run long.
PG_BOUNDS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
    "options": "-c lock_timeout=60s -c idle_in_transaction_session_timeout=600s",
}


def make_engine(url: str, *, connect_timeout: int = 5) -> Engine:
    """An engine that survives database restarts and, on SQLite, concurrent readers."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        given = make_url(url).query
        connect_args = {k: v for k, v in PG_BOUNDS.items() if k not in given}
        if "options" in given:  # both apply; the URL's come last, so they win
            theirs = given["options"]
            theirs = theirs if isinstance(theirs, str) else " ".join(theirs)
            connect_args["options"] = f"{PG_BOUNDS['options']} {theirs}"
        connect_args["connect_timeout"] = connect_timeout
    # pre_ping drops connections a database restart or network cut left dead in the pool.
    return create_engine(url, pool_pre_ping=True, pool_recycle=1800, connect_args=connect_args)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the HTTP API and reports read while the consumer writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose transaction commits on leaving the block, rolls back on an error.

    Repositories translate their own errors; this translates the commit's (a
    lost connection, a serialization failure, a deferred constraint) to
    :class:`db.errors.StoreError` as well.
    """
    try:
        with sessions() as session, session.begin():
            yield session
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc) from exc


def database_problem(sessions: sessionmaker[Session]) -> str | None:
    """None when the database answers a trivial query, else why not (a readiness probe's
    answer: the error's kind, without the connection details its message may hold)."""
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
    except sa_exc.SQLAlchemyError as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None
