"""Sessions of the overview page, stored so that every replica and a restarted process
see the same ones, and so that signing out revokes a session for good.

The cookie only carries a signed session id (``service.api.ui_session``); whether
that session still stands is decided here: it exists, has not expired and was
not revoked, and the token it was opened with still has the same digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Index, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from db.base import Base, UTCDateTime
from db.errors import translated


class UiSessionRow(Base):
    __tablename__ = "ui_sessions"
    __table_args__ = (Index("ix_ui_sessions_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_name: Mapped[str] = mapped_column(String(200))
    # The sha256 of the token (as configured): a token replaced under the same name
    # ends the sessions opened with the old one.
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True, slots=True)
class UiSession:
    id: str
    token_name: str
    token_sha256: str


@translated
class UiSessionRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def open(
        self, sid: str, token_name: str, token_sha256: str, now: datetime, expires: datetime
    ) -> None:
        """Store a new session; sessions expired before ``now`` are deleted on the way, so
        the table holds no more than the sessions opened in one lifetime."""
        self.session.execute(delete(UiSessionRow).where(UiSessionRow.expires_at <= now))
        self.session.add(
            UiSessionRow(
                id=sid,
                token_name=token_name,
                token_sha256=token_sha256,
                created_at=now,
                expires_at=expires,
            )
        )
        self.session.flush()

    def live(self, sid: str, now: datetime) -> UiSession | None:
        """The session ``sid`` if it stands at ``now``: stored, not expired, not revoked."""
        r = UiSessionRow
        row = self.session.scalars(
            select(r).where(r.id == sid, r.expires_at > now, r.revoked_at.is_(None))
        ).one_or_none()
        return None if row is None else UiSession(row.id, row.token_name, row.token_sha256)

    def revoke(self, sid: str, now: datetime) -> None:
        r = UiSessionRow
        self.session.execute(
            update(r).where(r.id == sid, r.revoked_at.is_(None)).values(revoked_at=now)
        )
