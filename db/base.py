"""The declarative base every table module builds on: one metadata, its naming
convention and the column types shared by all tables.

Tables are defined beside their repositories (:mod:`db.models` for the monitoring
half, :mod:`db.runs`, :mod:`db.registry`, ... for retraining); :mod:`db.tables`
imports them all so that ``Base.metadata`` is complete wherever it is read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, MetaData, TypeDecorator, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for growth.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC and timezone-aware in Python.

    SQLite has no timezone support and returns naive values; normalising here
    means no caller ever compares naive with aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def one_active_per_model(name: str) -> Index:
    """A partial unique index on ``model`` over the rows whose ``active`` is true: at most
    one active run (or rollout) per model, whichever replica inserts it."""
    return Index(
        name,
        "model",
        unique=True,
        sqlite_where=text("active = 1"),
        postgresql_where=text("active"),
    )
