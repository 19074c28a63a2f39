"""One SQL transaction per flush: aggregate deltas and the offsets that produced them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from db.errors import OffsetConflict, translate
from db.repositories import (
    OffsetAdvance,
    OffsetRepository,
    StoredOffset,
    WindowAggregateRepository,
    WindowDelta,
    WindowKey,
)


class CheckpointStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        consumer_group: str,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self.group = consumer_group
        self._clock = clock

    def load(self, topic: str, partitions: Iterable[int]) -> dict[int, StoredOffset]:
        try:
            with self._sessions() as session:
                return OffsetRepository(session, self.group).load(topic, partitions)
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc

    def commit(
        self, advances: list[OffsetAdvance], deltas: Mapping[WindowKey, WindowDelta]
    ) -> None:
        """Apply ``deltas`` and move offsets atomically.

        Raises OffsetConflict (nothing applied) when a stored offset is not the
        expected one, StoreUnavailable when the database cannot be reached.
        """
        now = datetime.fromtimestamp(self._clock(), UTC)
        try:
            with self._sessions() as session, session.begin():
                offsets = OffsetRepository(session, self.group)
                conflicts = [
                    (a.topic, a.partition) for a in advances if not offsets.advance(a, now)
                ]
                if conflicts:
                    raise OffsetConflict(conflicts)
                windows = WindowAggregateRepository(session)
                for key, delta in deltas.items():
                    windows.add(key, delta, now)
        except sa_exc.IntegrityError as exc:
            # Two first-ever flushes of one partition raced on the insert.
            raise OffsetConflict(
                [(a.topic, a.partition) for a in advances if a.expected is None]
            ) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc
