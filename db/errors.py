"""Errors raised by the SQL store.

    StoreError                the database refused the work; a bug or a setup problem
    ├── StoreUnavailable      the database cannot be reached, or the connection was lost (retriable)
    ├── StoreContention       a serialization failure, deadlock, lock or statement timeout,
    │                         or SQLite busy: the same transaction may succeed again (retriable)
    ├── IntegrityViolation    a constraint refused a write (NOT NULL, foreign key, a unique key
    │                         the caller did not expect): a bug, never "already stored"
    ├── DatabaseNotMigrated   the schema is not at the code's revision
    ├── OffsetConflict        stored offsets moved under us: another consumer owns them
    └── CursorMoved           the late-label join's cursor moved under this run: another
                              run counted those labels (retriable: the next run goes on)

SQLAlchemy's exceptions are translated by :func:`translate` at the boundary:
every repository class is wrapped by :func:`translated`, and
:func:`db.session.transaction` translates what the commit raises. A repository
that treats a duplicate as "already stored" asks :func:`violates` whether the
unique constraint it means is the one that refused the row.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import FromClause, PrimaryKeyConstraint, Table, UniqueConstraint
from sqlalchemy import exc as sa_exc

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=type)

# SQLSTATEs (PostgreSQL appendix A) worth retrying as they are.
_PG_CONTENTION = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled (statement_timeout)
    }
)
# connection_exception, insufficient_resources, admin/crash shutdown, system errors.
_PG_UNAVAILABLE_PREFIXES = ("08", "53", "57P", "58")
_PG_UNIQUE_VIOLATION = "23505"
# sqlite3 error names (Python 3.11+), matched by prefix: SQLITE_BUSY_SNAPSHOT is a busy.
_SQLITE_CONTENTION_PREFIXES = ("SQLITE_BUSY", "SQLITE_LOCKED")
_SQLITE_UNAVAILABLE_PREFIXES = ("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL")
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


class StoreError(Exception):
    retriable: bool = False


class StoreUnavailable(StoreError):
    retriable = True


class StoreContention(StoreError):
    retriable = True


class IntegrityViolation(StoreError):
    """``constraint`` names the refusing constraint where the database says it (PostgreSQL)."""

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class DatabaseNotMigrated(StoreError):
    pass


class OffsetConflict(StoreError):
    """Raised when the offsets stored in SQL are not the ones this consumer expected."""

    def __init__(self, partitions: list[tuple[str, int]]) -> None:
        names = ", ".join(f"{t}[{p}]" for t, p in partitions)
        super().__init__(f"stored offsets moved for {names}")
        self.partitions = partitions


class CursorMoved(StoreError):
    """Another run moved a late-label cursor first: this run's work is already counted."""

    retriable = True

    def __init__(self, model: str, partition: int) -> None:
        super().__init__(f"late-label cursor of {model}[{partition}] moved under this run")
        self.model = model
        self.partition = partition


def translate(exc: sa_exc.SQLAlchemyError) -> StoreError:
    """Map a SQLAlchemy error to the store's hierarchy (retriable or not)."""
    orig = getattr(exc, "orig", None)
    message = str(orig if orig is not None else exc).strip()
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return StoreUnavailable(message)
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return StoreUnavailable(message)  # no pooled connection came free, or it died
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    sqlite_name: str | None = getattr(orig, "sqlite_errorname", None)
    if sqlstate in _PG_CONTENTION or (sqlite_name or "").startswith(_SQLITE_CONTENTION_PREFIXES):
        return StoreContention(message)
    if (sqlstate or "").startswith(_PG_UNAVAILABLE_PREFIXES) or (sqlite_name or "").startswith(
        _SQLITE_UNAVAILABLE_PREFIXES
    ):
        return StoreUnavailable(message)
    if isinstance(exc, sa_exc.IntegrityError):
        diag = getattr(orig, "diag", None)
        return IntegrityViolation(message, getattr(diag, "constraint_name", None))
    if isinstance(exc, sa_exc.InterfaceError):
        return StoreUnavailable(message)  # the driver's connection is closed or broken
    if isinstance(exc, sa_exc.OperationalError) and sqlstate is None and sqlite_name is None:
        return StoreUnavailable(message)  # failed to connect: no server has answered
    return StoreError(message)


def violates(exc: sa_exc.IntegrityError, table: FromClause, constraint: str) -> bool:
    """True when ``exc`` is the unique or primary key ``constraint`` (or unique index) of
    ``table`` refusing a row.

    PostgreSQL names the constraint (``diag.constraint_name``). SQLite names only
    its columns (``UNIQUE constraint failed: t.a, t.b``), so they are compared
    with the constraint's columns, in order.
    """
    if not isinstance(table, Table):
        raise TypeError(f"expected a table (a model's __table__), got {table!r}")
    wanted: Any = next(
        (
            c
            for c in table.constraints
            if c.name == constraint and isinstance(c, UniqueConstraint | PrimaryKeyConstraint)
        ),
        None,
    )
    # A unique index (a partial one, such as "one production version per model") refuses
    # rows the same way and is named the same way by PostgreSQL.
    if wanted is None:
        wanted = next((i for i in table.indexes if i.name == constraint and i.unique), None)
    if wanted is None:
        raise LookupError(f"{table.name} has no unique constraint {constraint!r}")
    orig: Any = exc.orig
    if getattr(orig, "sqlstate", None) == _PG_UNIQUE_VIOLATION:
        return bool(orig.diag.constraint_name == constraint)
    if getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE:
        columns = ", ".join(f"{table.name}.{column.name}" for column in wanted.columns)
        return str(orig) == f"UNIQUE constraint failed: {columns}"
    return False


def translating(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` with SQLAlchemy errors raised as :class:`StoreError` (the original chained)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    return wrapper


def translated(cls: C) -> C:
    """Wrap every public method of a repository class with :func:`translating`."""
    for name, attr in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(attr):
            setattr(cls, name, translating(attr))
    return cls
