"""The late-label join's cursor over the label archive, one row per (group, model, partition).

A row says up to which label offset of that labels partition the batch join
has read; it moves in the transaction that adds what was read to the
performance aggregates, by compare-and-set, like the consumer's own offsets
(:meth:`db.repositories.OffsetRepository.advance`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.errors import CursorMoved, translated, violates
from db.models import LateLabelCursor, LateLabelStart


@translated
class LateCursorRepository:
    def __init__(self, session: Session, group: str) -> None:
        self.session = session
        self.group = group

    def cursors(self, model: str) -> dict[int, int]:
        """The next unread label offset per labels partition (absent: see :meth:`starts`)."""
        c = LateLabelCursor
        rows = self.session.execute(
            select(c.partition, c.next_offset).where(
                c.consumer_group == self.group, c.model == model
            )
        )
        return {int(p): int(o) for p, o in rows}

    def starts(self, topic: str) -> dict[int, int]:
        """Per partition of ``topic``, the offset a model without a cursor starts from:
        what was consumed before the late join existed (absent: from offset 0)."""
        s = LateLabelStart
        rows = self.session.execute(
            select(s.partition, s.next_offset).where(
                s.consumer_group == self.group, s.topic == topic
            )
        )
        return {int(p): int(o) for p, o in rows}

    def advance(
        self, model: str, partition: int, expected: int | None, next_offset: int, now: datetime
    ) -> None:
        """Move the cursor from ``expected`` (None: no row yet); CursorMoved if it was not.

        PostgreSQL re-checks the WHERE on the old value after the row lock and a racing
        first insert fails on the primary key, so of two runs reading the same labels
        only one commits them.
        """
        c = LateLabelCursor
        if expected is None:
            self.session.add(
                c(
                    consumer_group=self.group,
                    model=model,
                    partition=partition,
                    next_offset=next_offset,
                    updated_at=now,
                )
            )
            try:
                self.session.flush()
            except IntegrityError as exc:
                if violates(exc, c.__table__, "pk_late_label_cursors"):
                    raise CursorMoved(model, partition) from exc
                raise
            return
        result = self.session.execute(
            update(c)
            .where(
                c.consumer_group == self.group,
                c.model == model,
                c.partition == partition,
                c.next_offset == expected,
            )
            .values(next_offset=next_offset, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise CursorMoved(model, partition)
