"""Repositories against both supported databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.layouts import LayoutRepository
from db.models import ConsumerOffset, WindowAggregate
from db.repositories import (
    OffsetAdvance,
    OffsetRepository,
    StoredOffset,
    WindowAggregateRepository,
    WindowCount,
    WindowDelta,
    WindowKey,
)
from drift.errors import SketchCorrupt
from drift.latency_sketch import LatencySketch
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import WindowBatch, WindowSketch

NOW = datetime(2026, 11, 21, 14, 0, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
GROUP = "g1"

SPEC = ModelSpec(
    "fraud",
    (
        FeatureSpec("amount", FeatureKind.NUMERICAL, nullable=True, edges=(0.0, 10.0)),
        FeatureSpec("country", FeatureKind.CATEGORICAL),
    ),
    PredictionSpec(PredictionKind.CATEGORICAL),
    window_seconds=60,
)
START = 1_800_000_000  # a multiple of 60
START_DT = datetime.fromtimestamp(START, UTC)


def sketch(amounts: list[float | None], countries: list[str], preds: list[str]) -> WindowSketch:
    s = WindowSketch.empty(SPEC)
    s.update(WindowBatch(len(preds), {"amount": amounts, "country": countries}, preds))
    return s


def key(partition: int = 0, start: int = START, version: str = "v1") -> WindowKey:
    return WindowKey("fraud", version, start, 60, partition, SPEC.layout)


def assert_utc(value: datetime) -> None:
    assert value.tzinfo is not None
    assert value.utcoffset() == timedelta(0)
    assert value.tzinfo is UTC


# -- OffsetRepository -----------------------------------------------------------


def test_offset_insert_when_nothing_is_stored(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        assert OffsetRepository(s, GROUP).advance(OffsetAdvance("t", 0, None, 10, 99.5), NOW)
    with sessions() as s:
        assert OffsetRepository(s, GROUP).load("t", [0, 1]) == {0: StoredOffset(10, 99.5)}
        row = s.scalars(select(ConsumerOffset)).one()
        assert (row.consumer_group, row.topic, row.partition) == (GROUP, "t", 0)
        assert row.updated_at == NOW
        assert_utc(row.updated_at)


def test_offset_second_insert_for_same_key_returns_false(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        repo = OffsetRepository(s, GROUP)
        assert repo.advance(OffsetAdvance("t", 0, None, 10, None), NOW)
        # Same session: the row is already pending in the identity map.
        assert not repo.advance(OffsetAdvance("t", 0, None, 20, None), NOW)
    with sessions.begin() as s:
        # A fresh session finds the committed row.
        assert not OffsetRepository(s, GROUP).advance(OffsetAdvance("t", 0, None, 30, 1.0), LATER)
    with sessions() as s:
        assert OffsetRepository(s, GROUP).load("t", [0]) == {0: StoredOffset(10, None)}
        assert s.scalars(select(ConsumerOffset.updated_at)).one() == NOW


def test_offset_update_with_expected_value(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        OffsetRepository(s, GROUP).advance(OffsetAdvance("t", 0, None, 10, 1.0), NOW)
    with sessions.begin() as s:
        assert OffsetRepository(s, GROUP).advance(OffsetAdvance("t", 0, 10, 25, 2.5), LATER)
    with sessions() as s:
        assert OffsetRepository(s, GROUP).load("t", [0]) == {0: StoredOffset(25, 2.5)}
        updated = s.scalars(select(ConsumerOffset.updated_at)).one()
        assert updated == LATER
        assert_utc(updated)


@pytest.mark.parametrize("expected", [9, 11, 0])
def test_offset_update_with_wrong_expected_changes_nothing(
    sessions: sessionmaker[Session], expected: int
) -> None:
    with sessions.begin() as s:
        OffsetRepository(s, GROUP).advance(OffsetAdvance("t", 0, None, 10, 1.0), NOW)
    with sessions.begin() as s:
        moved = OffsetRepository(s, GROUP).advance(OffsetAdvance("t", 0, expected, 50, 5.0), LATER)
        assert moved is False
    with sessions() as s:
        assert OffsetRepository(s, GROUP).load("t", [0]) == {0: StoredOffset(10, 1.0)}
        assert s.scalars(select(ConsumerOffset.updated_at)).one() == NOW


def test_offset_update_of_a_missing_row_returns_false(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        assert not OffsetRepository(s, GROUP).advance(OffsetAdvance("t", 0, 10, 50, None), NOW)
    with sessions() as s:
        assert s.scalars(select(ConsumerOffset)).all() == []


def test_offsets_are_scoped_by_group_topic_and_partition(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        mine, theirs = OffsetRepository(s, GROUP), OffsetRepository(s, "other")
        assert mine.advance(OffsetAdvance("t", 0, None, 1, None), NOW)
        assert mine.advance(OffsetAdvance("t", 1, None, 2, None), NOW)
        assert mine.advance(OffsetAdvance("u", 0, None, 3, None), NOW)
        assert theirs.advance(OffsetAdvance("t", 0, None, 4, None), NOW)
        # Another group's row does not satisfy our expectation.
        assert not mine.advance(OffsetAdvance("t", 0, 4, 9, None), NOW)
    with sessions() as s:
        assert OffsetRepository(s, GROUP).load("t", [0, 1, 2]) == {
            0: StoredOffset(1, None),
            1: StoredOffset(2, None),
        }
        assert OffsetRepository(s, GROUP).load("t", [1]) == {1: StoredOffset(2, None)}
        assert OffsetRepository(s, GROUP).load("u", [0]) == {0: StoredOffset(3, None)}
        assert OffsetRepository(s, "other").load("t", [0, 1]) == {0: StoredOffset(4, None)}
        assert OffsetRepository(s, GROUP).load("t", []) == {}


def test_offset_watermark_keeps_full_precision(sessions: sessionmaker[Session]) -> None:
    wm = 1_800_000_123.456789
    with sessions.begin() as s:
        OffsetRepository(s, GROUP).advance(OffsetAdvance("t", 0, None, 1, wm), NOW)
    with sessions() as s:
        assert OffsetRepository(s, GROUP).load("t", [0])[0].watermark == wm


# -- WindowAggregateRepository ----------------------------------------------------


def test_window_add_creates_a_row(sessions: sessionmaker[Session]) -> None:
    delta = WindowDelta(sketch([1.0, None], ["de", "fr"], ["yes", "no"]), late=3)
    with sessions.begin() as s:
        WindowAggregateRepository(s).add(key(), delta, NOW)
    with sessions() as s:
        row = s.scalars(select(WindowAggregate)).one()
        assert (row.model, row.model_version, row.partition) == ("fraud", "v1", 0)
        assert (row.event_count, row.late_count) == (2, 3)
        assert row.window_start == START_DT
        assert row.window_end == START_DT + timedelta(seconds=60)
        assert row.updated_at == NOW
        for value in (row.window_start, row.window_end, row.updated_at):
            assert_utc(value)
        assert WindowSketch.from_bytes(row.sketch, LayoutRepository(s).edges) == delta.sketch


def test_window_latency_is_stored_once_any_event_carries_one(
    sessions: sessionmaker[Session],
) -> None:
    repo_key = key()
    with sessions.begin() as s:
        WindowAggregateRepository(s).add(repo_key, WindowDelta(sketch([1.0], ["de"], ["y"])), NOW)
    with sessions() as s:
        assert s.scalars(select(WindowAggregate.latency)).one() is None
    for values in ([3.0, 5.0], [], [1000.0]):
        delta = WindowDelta(sketch([1.0], ["de"], ["y"]), latency=LatencySketch.of(values))
        with sessions.begin() as s:
            WindowAggregateRepository(s).add(repo_key, delta, LATER)
    with sessions() as s:
        stored = s.scalars(select(WindowAggregate.latency)).one()
    assert stored is not None
    assert LatencySketch.from_bytes(stored) == LatencySketch.of([3.0, 5.0, 1000.0])


def test_window_add_merges_into_the_existing_row(sessions: sessionmaker[Session]) -> None:
    first = sketch([1.0], ["de"], ["yes"])
    second = sketch([20.0, None], ["fr", "de"], ["no", "no"])
    with sessions.begin() as s:
        WindowAggregateRepository(s).add(key(), WindowDelta(first, late=1), NOW)
    with sessions.begin() as s:
        WindowAggregateRepository(s).add(key(), WindowDelta(second, late=2), LATER)
    expected = sketch([1.0], ["de"], ["yes"])
    expected.merge(second)
    with sessions() as s:
        row = s.scalars(select(WindowAggregate)).one()
        assert (row.event_count, row.late_count) == (3, 3)
        assert row.updated_at == LATER
        assert WindowSketch.from_bytes(row.sketch, LayoutRepository(s).edges) == expected


def test_a_flush_onto_a_row_that_cannot_be_read_names_the_row_and_changes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        WindowAggregateRepository(s).add(
            key(partition=2), WindowDelta(sketch([1.0], ["de"], ["y"])), NOW
        )
    with sessions.begin() as s:
        s.scalars(select(WindowAggregate)).one().sketch = b"not a sketch"
    with pytest.raises(SketchCorrupt) as raised, sessions.begin() as s:
        WindowAggregateRepository(s).add(
            key(partition=2), WindowDelta(sketch([2.0], ["fr"], ["n"])), LATER
        )
    assert str(raised.value).startswith(
        f"window row fraud/v1 at {START_DT.isoformat()}, partition 2, layout "
    )
    assert str(raised.value).endswith(str(raised.value.__cause__))
    with sessions() as s:
        row = s.scalars(select(WindowAggregate)).one()
        assert (row.sketch, row.event_count, row.updated_at) == (b"not a sketch", 1, NOW)


def test_a_flush_of_many_rows_merges_the_stored_and_creates_the_rest(
    sessions: sessionmaker[Session],
) -> None:
    # More keys than one lookup query takes, half of them stored before: each stored row
    # is found (merged, not inserted twice) whichever query of the flush reads it.
    keys = [key(partition=p % 3, start=START + 60 * (p // 3)) for p in range(1200)]
    with sessions.begin() as s:
        stored = {k: WindowDelta(sketch([1.0], ["de"], ["y"]), late=1) for k in keys[::2]}
        WindowAggregateRepository(s).add_all(stored, NOW)
    with sessions.begin() as s:
        WindowAggregateRepository(s).add_all(
            {k: WindowDelta(sketch([2.0, 3.0], ["fr", "de"], ["n", "y"])) for k in keys}, LATER
        )
    with sessions() as s:
        rows = s.scalars(select(WindowAggregate)).all()
        by_key = {(r.partition, r.window_start): (r.event_count, r.late_count) for r in rows}
    assert len(rows) == len(keys)
    for i, k in enumerate(keys):
        start = datetime.fromtimestamp(k.window_start, UTC)
        assert by_key[(k.partition, start)] == ((3, 1) if i % 2 == 0 else (2, 0))


def test_window_add_twice_in_one_session_merges(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        repo = WindowAggregateRepository(s)
        repo.add(key(), WindowDelta(sketch([1.0], ["de"], ["yes"])), NOW)
        repo.add(key(), WindowDelta(sketch([2.0], ["de"], ["yes"])), NOW)
    with sessions() as s:
        row = s.scalars(select(WindowAggregate)).one()
        assert row.event_count == 2
        expected = sketch([1.0], ["de"], ["yes"])
        expected.merge(sketch([2.0], ["de"], ["yes"]))
        assert WindowSketch.from_bytes(row.sketch, LayoutRepository(s).edges) == expected


def test_window_counts_sum_partitions(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        repo = WindowAggregateRepository(s)
        repo.add(key(0), WindowDelta(sketch([1.0], ["de"], ["y"]), late=1), NOW)
        repo.add(key(1), WindowDelta(sketch([1.0, 2.0], ["de", "fr"], ["y", "n"]), late=0), NOW)
        repo.add(key(2), WindowDelta(WindowSketch.empty(SPEC), late=4), NOW)
        repo.add(key(0, START + 60), WindowDelta(sketch([3.0], ["it"], ["n"])), NOW)
        repo.add(key(0, version="v2"), WindowDelta(sketch([3.0], ["it"], ["n"])), NOW)
        other = WindowKey("churn", "v1", START - 300, 300, 5)
        repo.add(other, WindowDelta(sketch([3.0], ["it"], ["n"])), NOW)
    end = START_DT + timedelta(seconds=60)
    with sessions() as s:
        counts = WindowAggregateRepository(s).window_counts()
        assert counts == [
            WindowCount(
                "churn",
                "v1",
                START_DT - timedelta(seconds=300),
                START_DT,
                1,
                0,
                1,
            ),
            WindowCount("fraud", "v1", START_DT, end, 3, 5, 3),
            WindowCount("fraud", "v2", START_DT, end, 1, 0, 1),
            WindowCount("fraud", "v1", end, end + timedelta(seconds=60), 1, 0, 1),
        ]
        for c in counts:
            assert_utc(c.window_start)
            assert_utc(c.window_end)
            assert type(c.events) is int
        assert [c.model for c in WindowAggregateRepository(s).window_counts("churn")] == ["churn"]
        assert len(WindowAggregateRepository(s).window_counts("fraud")) == 3
        assert WindowAggregateRepository(s).window_counts("nope") == []


def test_window_counts_of_an_empty_database(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert WindowAggregateRepository(s).window_counts() == []


def test_window_sketch_merges_partitions(sessions: sessionmaker[Session]) -> None:
    parts = [
        sketch([1.0, None], ["de", "fr"], ["y", "n"]),
        sketch([15.0], ["de"], ["y"]),
        sketch([-2.0, 5.0, 5.0], ["it", "it", "de"], ["n", "n", "y"]),
    ]
    with sessions.begin() as s:
        repo = WindowAggregateRepository(s)
        # Written out of partition order; read back merged in partition order.
        for partition in (2, 0, 1):
            repo.add(key(partition), WindowDelta(parts[partition]), NOW)
        repo.add(key(0, START + 60), WindowDelta(sketch([9.0], ["x"], ["z"])), NOW)
        repo.add(key(0, version="v2"), WindowDelta(sketch([9.0], ["x"], ["z"])), NOW)
    expected = WindowSketch.empty(SPEC)
    for part in parts:
        expected.merge(part)
    with sessions() as s:
        merged = WindowAggregateRepository(s).window_sketch("fraud", "v1", START_DT)
        assert merged == expected
        assert merged.events == 6


def test_window_sketch_accepts_any_utc_offset(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        WindowAggregateRepository(s).add(key(), WindowDelta(sketch([1.0], ["de"], ["y"])), NOW)
    berlin = START_DT.astimezone(timezone(timedelta(hours=1)))
    with sessions() as s:
        assert WindowAggregateRepository(s).window_sketch("fraud", "v1", berlin).events == 1


def test_window_sketch_of_a_missing_window_raises_lookup_error(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as s, pytest.raises(LookupError, match="no window fraud/v1 at"):
        WindowAggregateRepository(s).window_sketch("fraud", "v1", START_DT)


def test_new_bins_mid_window_start_a_new_row_instead_of_failing(
    sessions: sessionmaker[Session],
) -> None:
    rebinned = ModelSpec(
        "fraud",
        (
            FeatureSpec("amount", FeatureKind.NUMERICAL, nullable=True, edges=(0.0, 5.0, 10.0)),
            FeatureSpec("country", FeatureKind.CATEGORICAL),
        ),
        PredictionSpec(PredictionKind.CATEGORICAL),
        window_seconds=60,
    )
    assert rebinned.layout != SPEC.layout
    newer = WindowSketch.empty(rebinned)
    newer.update(WindowBatch(1, {"amount": [7.0], "country": ["de"]}, ["yes"]))
    with sessions.begin() as s:
        repo = WindowAggregateRepository(s)
        repo.add(key(), WindowDelta(sketch([1.0], ["de"], ["no"])), NOW)
    with sessions.begin() as s:
        repo = WindowAggregateRepository(s)
        repo.add(WindowKey("fraud", "v1", START, 60, 0, rebinned.layout), WindowDelta(newer), LATER)
    with sessions() as s:
        repo = WindowAggregateRepository(s)
        (count,) = repo.window_counts()
        assert (count.events, count.partitions) == (2, 1)
        latest = repo.window_sketch("fraud", "v1", START_DT)
        assert latest.features["amount"].hist.tolist() == [0, 0, 1, 0]
        older = repo.window_sketch("fraud", "v1", START_DT, layout=SPEC.layout)
        assert older.features["amount"].hist.tolist() == [0, 1, 0]
