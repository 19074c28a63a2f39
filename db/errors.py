"""Errors raised by the SQL store.

    StoreError
    ├── StoreUnavailable      the database cannot be reached now (retriable)
    ├── DatabaseNotMigrated   the schema is not at the code's revision
    └── OffsetConflict        stored offsets moved under us: another consumer owns them

SQLAlchemy's exceptions are translated by :func:`translate` at the boundary.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc


class StoreError(Exception):
    retriable: bool = False


class StoreUnavailable(StoreError):
    retriable = True


class DatabaseNotMigrated(StoreError):
    pass


class OffsetConflict(StoreError):
    """Raised when the offsets stored in SQL are not the ones this consumer expected."""

    def __init__(self, partitions: list[tuple[str, int]]) -> None:
        names = ", ".join(f"{t}[{p}]" for t, p in partitions)
        super().__init__(f"stored offsets moved for {names}")
        self.partitions = partitions


def translate(exc: sa_exc.SQLAlchemyError) -> StoreError:
    """Map a SQLAlchemy error to the store's hierarchy (retriable or not)."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return StoreUnavailable(str(exc.orig))
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return StoreUnavailable(str(getattr(exc, "orig", None) or exc))
    if isinstance(exc, sa_exc.DisconnectionError):
        return StoreUnavailable(str(exc))
    return StoreError(str(exc))
