"""One SQL transaction per flush: the offsets, and every state they produced.

That is the window aggregates and, with labels, the join state and the
performance aggregates. Offsets move by compare-and-set; with labels, the
partitions whose join state the flush touches are also fenced on the offset
of the other topic, so a replica that lost a partition on either topic
cannot write join state for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from consumers.join import JoinBatch, JoinCounts, apply_join
from db.errors import OffsetConflict, translate
from db.repositories import (
    OffsetAdvance,
    OffsetFence,
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
        self,
        advances: list[OffsetAdvance],
        deltas: Mapping[WindowKey, WindowDelta],
        join: JoinBatch | None = None,
        fences: Sequence[OffsetFence] = (),
        before_commit: Callable[[], None] | None = None,
    ) -> JoinCounts:
        """Apply ``deltas`` and ``join`` and move offsets atomically.

        Raises OffsetConflict (nothing applied) when a stored offset is not the
        expected one (``advances``' ``expected``, or a fence's), StoreUnavailable
        when the database cannot be reached. ``before_commit`` runs last inside
        the transaction; whatever it raises rolls the transaction back.
        """
        now = datetime.fromtimestamp(self._clock(), UTC)
        try:
            with self._sessions() as session, session.begin():
                offsets = OffsetRepository(session, self.group)
                if join is not None:
                    offsets.lock_partitions(join.partitions())
                conflicts = [
                    (a.topic, a.partition) for a in advances if not offsets.advance(a, now)
                ]
                conflicts += offsets.check(fences)
                if conflicts:
                    raise OffsetConflict(conflicts)
                WindowAggregateRepository(session).add_all(deltas, now)
                counts = JoinCounts() if join is None else apply_join(session, join, now)
                if before_commit is not None:
                    before_commit()
                return counts
        except sa_exc.IntegrityError as exc:
            # Two first-ever flushes of one partition raced on the insert.
            first = [(a.topic, a.partition) for a in advances if a.expected is None]
            if not first:
                raise translate(exc) from exc
            raise OffsetConflict(first) from exc
        except sa_exc.SQLAlchemyError as exc:
            raise translate(exc) from exc
