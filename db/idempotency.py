"""Idempotency keys of API requests: the first response to a key, replayed for repeats.

A key is unique within its scope (the route and its target, e.g. the model a
retrain was asked for). The request's fingerprint is stored with it, so a key
reused for a different request is told apart from an honest retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, BigId, UTCDateTime
from db.errors import translated
from db.repository import Repository


class IdempotencyKeyRow(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("scope", "key", name="uq_idempotency_keys_key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: str


@translated
class IdempotencyRepository(Repository[IdempotencyKeyRow]):
    row = IdempotencyKeyRow

    def get(self, scope: str, key: str) -> StoredResponse | None:
        r = IdempotencyKeyRow
        row = self._one(select(r).where(r.scope == scope, r.key == key))
        return None if row is None else StoredResponse(row.fingerprint, row.status, row.body)

    def remember(
        self, scope: str, key: str, response: StoredResponse, now: datetime
    ) -> StoredResponse:
        """Store ``response`` for the key; when the key is stored already, the stored one."""
        row = IdempotencyKeyRow(
            scope=scope,
            key=key,
            fingerprint=response.fingerprint,
            status=response.status,
            body=response.body,
            created_at=now,
        )
        if not self._add_once(row, "uq_idempotency_keys_key"):
            stored = self.get(scope, key)
            assert stored is not None
            return stored
        return response
