"""CheckpointStore: aggregates and offsets move together or not at all."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from consumers.checkpoint import CheckpointStore
from db.errors import OffsetConflict, StoreUnavailable
from db.models import ConsumerOffset, WindowAggregate
from db.repositories import OffsetAdvance, StoredOffset, WindowDelta, WindowKey
from db.session import make_engine, make_session_factory
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import WindowBatch, WindowSketch

CLOCK = 1_800_000_030.5
SPEC = ModelSpec(
    "fraud",
    (FeatureSpec("amount", FeatureKind.NUMERICAL, edges=(0.0, 10.0)),),
    PredictionSpec(PredictionKind.NUMERICAL, (0.0, 1.0)),
    window_seconds=60,
)
START = 1_800_000_000


@pytest.fixture
def store(sessions: sessionmaker[Session]) -> CheckpointStore:
    return CheckpointStore(sessions, "g1", lambda: CLOCK)


def delta(*amounts: float, late: int = 0) -> WindowDelta:
    s = WindowSketch.empty(SPEC)
    s.update(WindowBatch(len(amounts), {"amount": list(amounts)}, [0.5] * len(amounts)))
    return WindowDelta(s, late)


def key(partition: int) -> WindowKey:
    return WindowKey("fraud", "v1", START, 60, partition)


def rows(sessions: sessionmaker[Session]) -> tuple[list[tuple], list[tuple]]:
    with sessions() as s:
        offsets = [
            (r.topic, r.partition, r.next_offset, r.watermark, r.updated_at)
            for r in s.scalars(select(ConsumerOffset).order_by(ConsumerOffset.partition))
        ]
        windows = [
            (r.partition, r.event_count, r.late_count)
            for r in s.scalars(select(WindowAggregate).order_by(WindowAggregate.partition))
        ]
    return offsets, windows


def test_commit_writes_offsets_and_aggregates(
    store: CheckpointStore, sessions: sessionmaker[Session]
) -> None:
    store.commit(
        [OffsetAdvance("t", 0, None, 5, 100.0), OffsetAdvance("t", 1, None, 7, 101.0)],
        {key(0): delta(1.0, 2.0), key(1): delta(3.0, late=1)},
    )
    now = datetime.fromtimestamp(CLOCK, UTC)
    offsets, windows = rows(sessions)
    assert offsets == [("t", 0, 5, 100.0, now), ("t", 1, 7, 101.0, now)]
    assert all(o[4].tzinfo is UTC for o in offsets)
    assert windows == [(0, 2, 0), (1, 1, 1)]
    assert store.load("t", [0, 1, 2]) == {0: StoredOffset(5, 100.0), 1: StoredOffset(7, 101.0)}


def test_successive_commits_chain_expectations_and_merge(
    store: CheckpointStore, sessions: sessionmaker[Session]
) -> None:
    store.commit([OffsetAdvance("t", 0, None, 5, 1.0)], {key(0): delta(1.0)})
    store.commit([OffsetAdvance("t", 0, 5, 9, 2.0)], {key(0): delta(2.0, 3.0, late=2)})
    offsets, windows = rows(sessions)
    assert [o[:4] for o in offsets] == [("t", 0, 9, 2.0)]
    assert windows == [(0, 3, 2)]


def test_conflicting_advance_rolls_back_everything(
    store: CheckpointStore, sessions: sessionmaker[Session]
) -> None:
    store.commit([OffsetAdvance("t", 0, None, 5, 1.0)], {key(0): delta(1.0)})
    before = rows(sessions)
    with pytest.raises(OffsetConflict) as info:
        store.commit(
            [
                OffsetAdvance("t", 0, 5, 8, 2.0),  # would succeed on its own
                OffsetAdvance("t", 1, 3, 9, 2.0),  # nothing stored: conflict
                OffsetAdvance("t", 2, None, 4, 2.0),  # would insert on its own
            ],
            {key(0): delta(4.0), key(1): delta(5.0), key(2): delta(6.0)},
        )
    assert info.value.partitions == [("t", 1)]
    assert str(info.value) == "stored offsets moved for t[1]"
    assert rows(sessions) == before
    assert store.load("t", [0, 1, 2]) == {0: StoredOffset(5, 1.0)}


def test_conflict_lists_every_partition_that_moved(
    store: CheckpointStore, sessions: sessionmaker[Session]
) -> None:
    store.commit(
        [OffsetAdvance("t", 0, None, 5, None), OffsetAdvance("t", 1, None, 6, None)],
        {},
    )
    with pytest.raises(OffsetConflict) as info:
        store.commit(
            [OffsetAdvance("t", 0, None, 9, None), OffsetAdvance("t", 1, 4, 9, None)],
            {key(0): delta(1.0)},
        )
    assert info.value.partitions == [("t", 0), ("t", 1)]
    offsets, windows = rows(sessions)
    assert [o[:3] for o in offsets] == [("t", 0, 5), ("t", 1, 6)]
    assert windows == []


def test_commit_with_nothing_to_do(store: CheckpointStore, sessions: sessionmaker[Session]) -> None:
    store.commit([], {})
    assert rows(sessions) == ([], [])


def test_unreachable_database_is_retriable(tmp_path: Path) -> None:
    # A SQLite file in a directory that does not exist cannot be opened.
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    store = CheckpointStore(make_session_factory(engine), "g1", lambda: CLOCK)
    with pytest.raises(StoreUnavailable) as info:
        store.load("t", [0])
    assert info.value.retriable is True
    with pytest.raises(StoreUnavailable):
        store.commit([OffsetAdvance("t", 0, None, 1, None)], {})
    engine.dispose()
