"""The repository base: a repository wraps one session, flushes and never commits.

The service owns the transaction (:func:`db.session.transaction`); a repository
adds, reads and flushes within it. :class:`Repository` holds what every
domain repository shares: the session, reads of one row or a list, an insert
that flushes, and :func:`add_once`, an insert that treats exactly one unique
constraint as "already stored". Subclasses are wrapped by
:func:`db.errors.translated` like the base, so no SQLAlchemy error escapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from db.base import Base
from db.errors import translated, violates

RowT = TypeVar("RowT", bound=Base)


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """``session.begin_nested()``, kept nested on SQLite too.

    pysqlite opens its transaction only before an INSERT, UPDATE or DELETE, so a
    SAVEPOINT sent first becomes the outermost transaction and its RELEASE
    commits: a later rollback of the caller's transaction would not undo it.
    Beginning the transaction here, as pysqlite would at the insert, keeps the
    savepoint inside it.
    """
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        driver: Any = connection.connection.driver_connection
        if not driver.in_transaction:
            connection.exec_driver_sql("BEGIN")
    with session.begin_nested():
        yield


def add_once(session: Session, row: Any, constraint: str) -> bool:
    """Insert ``row`` under a savepoint; False when its table's unique ``constraint``
    refuses it as already stored (a replica or a repeated tick won the race).

    Any other integrity error (NOT NULL, a foreign key, another unique key) is a
    bug and is raised; the savepoint keeps the caller's transaction usable.
    """
    try:
        with savepoint(session):
            session.add(row)
            session.flush()
    except sa_exc.IntegrityError as exc:
        if violates(exc, row.__table__, constraint):
            return False
        raise
    return True


@translated
class Repository(Generic[RowT]):
    """One session's access to one kind of row (``RowT``, named by ``row``)."""

    row: type[RowT]

    def __init__(self, session: Session) -> None:
        self.session = session

    def by_id(self, row_id: int) -> RowT | None:
        return self.session.get(self.row, row_id)

    def _one(self, stmt: Select[RowT]) -> RowT | None:
        """The single row ``stmt`` selects, None when there is none (more is a bug)."""
        return self.session.scalars(stmt).one_or_none()

    def _first(self, stmt: Select[RowT]) -> RowT | None:
        return self.session.scalars(stmt).first()

    def _list(self, stmt: Select[RowT]) -> list[RowT]:
        return list(self.session.scalars(stmt).all())

    def _add(self, row: RowT) -> RowT:
        self.session.add(row)
        self.session.flush()
        return row

    def _add_once(self, row: RowT, constraint: str) -> bool:
        return add_once(self.session, row, constraint)
