"""The alert outbox and its delivery: one row per alert event, one per (event, channel).

An :class:`AlertEventRow` is what happened, queued by :class:`AlertOutbox` in the
transaction of the state change that causes it (a run's outcome, a drift
condition, a stall); an :class:`AlertDeliveryRow` is one channel's attempt to tell
someone, with its retry schedule. Routing an event creates its deliveries (the
unique (event, channel) pair makes a repeated routing a no-op); the event's
``delivered_at`` is set once none of them is pending any more. A delivery is
``pending`` until ``delivered``, ``dead`` (out of attempts, or refused for good)
or ``skipped`` (deduplicated: the condition was already firing, or nothing
was firing to resolve).

Which deliveries are due is decided per channel (:meth:`DeliveryRepository.due`), so
one channel's backlog never fills another's batch, and never a delivery while an
earlier one of the same channel and ``dedup_key`` is still pending: a resolve waits
for its trigger. A pass *claims* what it sends (``claimed_by``/``claimed_until``,
compare-and-set): another worker (a new leader, ``driftwatch alerts deliver``) skips
a claimed delivery until the claim ends, so a leadership handover in the middle of
a send does not send it twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from db.base import Base, BigId, UTCDateTime
from db.errors import translated
from db.repository import Repository


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    SKIPPED = "skipped"


class AlertEventRow(Base):
    """The alert outbox: written in the transaction of the state change that causes it,
    delivered later by the alert channels. ``key`` makes a retried write a no-op."""

    __tablename__ = "alert_events"
    __table_args__ = (
        UniqueConstraint("key", name="uq_alert_events_key"),
        Index("ix_alert_events_created_at", "created_at"),
        # last_action: every judged window asks for its model's newest event of a kind;
        # without it each asks by a scan of every model's events.
        Index("ix_alert_events_model_kind", "model", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("retrain_runs.id", ondelete="SET NULL"))
    message: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertDeliveryRow(Base):
    """One channel's delivery of one alert event; ``action`` is trigger or resolve,
    ``sent_at`` the last successful send (a firing Alertmanager alert is re-sent)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "channel", name="uq_alert_deliveries_event_channel"),
        Index("ix_alert_deliveries_status_due", "status", "next_attempt_at"),
        Index("ix_alert_deliveries_channel_dedup", "channel", "dedup_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("alert_events.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(100))
    dedup_key: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class Due:
    """A pending delivery with the event it carries."""

    delivery: AlertDeliveryRow
    event: AlertEventRow

    @property
    def payload(self) -> dict[str, Any]:
        return event_payload(self.event)


def event_payload(event: AlertEventRow) -> dict[str, Any]:
    data = json.loads(event.payload or "{}")
    return data if isinstance(data, dict) else {}


def event_action(event: AlertEventRow) -> str:
    """``trigger`` or ``resolve`` for a condition (its payload says which); ``notify`` for
    a one-off event such as a run's outcome, whose payload names no action."""
    action = event_payload(event).get("action")
    return action if action in ("trigger", "resolve") else "notify"


@translated
class DeliveryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def unrouted(self, limit: int) -> list[AlertEventRow]:
        """Events not yet fanned out to their channels, oldest first."""
        a, d = AlertEventRow, AlertDeliveryRow
        has = select(d.id).where(d.event_id == a.id).exists()
        stmt = select(a).where(a.delivered_at.is_(None), ~has).order_by(a.id).limit(limit)
        return list(self.session.scalars(stmt).all())

    def latest(self, channel: str, dedup_key: str) -> AlertDeliveryRow | None:
        """The channel's last delivery of this condition that was (or will be) sent."""
        d = AlertDeliveryRow
        stmt = (
            select(d)
            .where(
                d.channel == channel,
                d.dedup_key == dedup_key,
                d.status.in_([DeliveryStatus.PENDING, DeliveryStatus.DELIVERED]),
            )
            .order_by(d.id.desc())
            .limit(1)
        )
        return self.session.scalars(stmt).first()

    def add(
        self,
        event: AlertEventRow,
        channel: str,
        dedup_key: str,
        action: str,
        status: DeliveryStatus,
        now: datetime,
        note: str | None = None,
    ) -> AlertDeliveryRow:
        row = AlertDeliveryRow(
            event_id=event.id,
            channel=channel,
            dedup_key=dedup_key,
            action=action,
            status=status,
            attempts=0,
            next_attempt_at=now,
            last_error=note,
            created_at=now,
        )
        self.session.add(row)
        self.session.flush()
        return row

    def due(self, channel: str, now: datetime, limit: int) -> list[Due]:
        """``channel``'s pending deliveries whose time has come, unclaimed, and (for a
        condition's trigger or resolve) first of their ``dedup_key`` still pending there:
        a resolve never overtakes its trigger. Oldest schedule first."""
        d, a = AlertDeliveryRow, AlertEventRow
        earlier = aliased(AlertDeliveryRow)
        blocked = (
            select(earlier.id)
            .where(
                earlier.channel == d.channel,
                earlier.dedup_key == d.dedup_key,
                earlier.status == DeliveryStatus.PENDING,
                earlier.action != "notify",
                earlier.id < d.id,
            )
            .exists()
        )
        stmt = (
            select(d, a)
            .join(a, a.id == d.event_id)
            .where(
                d.channel == channel,
                d.status == DeliveryStatus.PENDING,
                d.next_attempt_at <= now,
                or_(d.claimed_until.is_(None), d.claimed_until < now),
                # One-off notices are independent; only a condition's changes are ordered.
                or_(d.action == "notify", ~blocked),
            )
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
        )
        return [Due(row, event) for row, event in self.session.execute(stmt)]

    def claim(self, delivery_id: int, owner: str, now: datetime, until: datetime) -> bool:
        """Take the delivery for ``owner`` until ``until`` unless a claim holds it now
        (compare-and-set: of two workers racing, one wins)."""
        d = AlertDeliveryRow
        stmt = (
            update(d)
            .where(
                d.id == delivery_id,
                d.status == DeliveryStatus.PENDING,
                or_(d.claimed_until.is_(None), d.claimed_until < now),
            )
            .values(claimed_by=owner, claimed_until=until)
            .execution_options(synchronize_session=False)
        )
        return bool(self.session.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def release(self, delivery_id: int, owner: str) -> None:
        """Give back a claim without an attempt (not sent: shutdown, rate limit, budget)."""
        d = AlertDeliveryRow
        stmt = (
            update(d)
            .where(d.id == delivery_id, d.claimed_by == owner)
            .values(claimed_by=None, claimed_until=None)
            .execution_options(synchronize_session=False)
        )
        self.session.execute(stmt)

    def get(self, delivery_id: int) -> Due | None:
        d, a = AlertDeliveryRow, AlertEventRow
        stmt = select(d, a).join(a, a.id == d.event_id).where(d.id == delivery_id)
        found = self.session.execute(stmt).first()
        return None if found is None else Due(found[0], found[1])

    def firing(self, channel: str, sent_before: datetime) -> list[Due]:
        """Delivered triggers still firing on ``channel`` (the condition's latest delivery)
        whose last send is older than ``sent_before``."""
        d, a = AlertDeliveryRow, AlertEventRow
        live = [DeliveryStatus.PENDING, DeliveryStatus.DELIVERED]
        newest = (
            select(d.dedup_key, func.max(d.id).label("id"))
            .where(d.channel == channel, d.status.in_(live))
            .group_by(d.dedup_key)
            .subquery()
        )
        stmt = (
            select(d, a)
            .join(newest, newest.c.id == d.id)
            .join(a, a.id == d.event_id)
            .where(
                d.status == DeliveryStatus.DELIVERED,
                d.action == "trigger",
                d.sent_at <= sent_before,
            )
            .order_by(d.id)
        )
        return [Due(row, event) for row, event in self.session.execute(stmt)]

    def finish_event(self, event_id: int, now: datetime) -> None:
        """Mark the event done once no delivery of it is pending."""
        d = AlertDeliveryRow
        pending = self.session.scalar(
            select(func.count())
            .select_from(d)
            .where(d.event_id == event_id, d.status == DeliveryStatus.PENDING)
        )
        if not pending:
            event = self.session.get(AlertEventRow, event_id)
            if event is not None and event.delivered_at is None:
                event.delivered_at = now
        self.session.flush()

    def counts(self) -> dict[tuple[str, str], int]:
        """Deliveries by (channel, status)."""
        d = AlertDeliveryRow
        stmt = select(d.channel, d.status, func.count()).group_by(d.channel, d.status)
        return {(c, s): int(n) for c, s, n in self.session.execute(stmt)}

    def listing(
        self, status: str | None = None, model: str | None = None, limit: int = 100
    ) -> list[Due]:
        d, a = AlertDeliveryRow, AlertEventRow
        stmt = select(d, a).join(a, a.id == d.event_id).order_by(d.id.desc()).limit(limit)
        if status is not None:
            stmt = stmt.where(d.status == status)
        if model is not None:
            stmt = stmt.where(a.model == model)
        return [Due(row, event) for row, event in self.session.execute(stmt)]


def last_action(session: Session, model: str, kind: str, scope: str | None = None) -> str | None:
    """The action of the newest alert event of ``model``/``kind`` whose payload names
    ``scope`` (None: names none): is that condition firing?"""
    event = last_event(session, model, kind, scope)
    return None if event is None else event_action(event)


def last_event(
    session: Session, model: str, kind: str, scope: str | None = None
) -> AlertEventRow | None:
    """The newest alert event of ``model``/``kind`` whose payload names ``scope``. Events
    are few (one per change of state, and retention deletes old ones), so the scope is
    matched here rather than in SQL, where JSON differs between SQLite and PostgreSQL."""
    a = AlertEventRow
    stmt = select(a).where(a.model == model, a.kind == kind).order_by(a.id.desc())
    for event in session.scalars(stmt):
        named = event_payload(event).get("scope")
        if (named if isinstance(named, str) and named else None) == scope:
            return event
    return None


@translated
class AlertOutbox(Repository[AlertEventRow]):
    row = AlertEventRow

    def add(
        self,
        key: str,
        kind: str,
        model: str,
        message: str,
        now: datetime,
        *,
        run_id: int | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> bool:
        """Queue an alert; False when the ``key`` was queued already."""
        row = AlertEventRow(
            key=key,
            kind=kind,
            model=model,
            run_id=run_id,
            message=message,
            payload=json.dumps(dict(payload or {}), sort_keys=True, default=str),
            created_at=now,
        )
        return self._add_once(row, "uq_alert_events_key")

    def events(self, model: str | None = None) -> list[AlertEventRow]:
        a = AlertEventRow
        stmt = select(a).order_by(a.id)
        if model is not None:
            stmt = stmt.where(a.model == model)
        return self._list(stmt)
