"""SQL errors leave db/ as the store's own errors, on SQLite and PostgreSQL.

"Already stored" is recognised only from the unique constraint a repository
means; NOT NULL and foreign-key failures are bugs and say so. Connection loss
and contention (serialization failures, deadlocks, lock timeouts, SQLite busy)
are retriable; the rest is not.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import (
    IntegrityViolation,
    OffsetConflict,
    StoreContention,
    StoreError,
    StoreUnavailable,
    violates,
)
from db.models import ConsumerOffset, DriftReportRow
from db.performance_reports import PerformanceReportRepository, PerformanceVerdict
from db.profiles import ProfileRepository
from db.reports import DriftReportRepository, WindowVerdict
from db.repositories import OffsetAdvance, OffsetRepository, WindowAggregateRepository
from db.session import make_engine, make_session_factory, transaction
from drift.performance import PerformanceSketch, Task
from drift.profile import ReferenceProfile
from drift.report import DriftReport, FeatureDrift
from drift.schema import FeatureKind

NOW = datetime(2026, 11, 21, tzinfo=UTC)
START = 1_800_000_000


def _profile(sessions: sessionmaker[Session]) -> int:
    profile = ReferenceProfile.from_columns(
        {"amount": [1.0, 2.0, 3.0] * 20}, {"amount": "numerical"}
    )
    with sessions.begin() as s:
        return ProfileRepository(s).add("fraud", profile, None, "test", NOW).id


def _verdict(profile_id: int) -> WindowVerdict:
    feature = FeatureDrift(
        "amount", FeatureKind.NUMERICAL, None, None, None, None, None, 60, 10, 0.0, 0.0
    )
    report = DriftReport((feature,), reference_rows=60, current_rows=10)
    return WindowVerdict(
        "fraud", "v1", START, 60, profile_id, 1, "sketch", 10, report, None, False, None
    )


def _performance() -> PerformanceVerdict:
    sketch = PerformanceSketch.empty(Task.CLASSIFICATION)
    sketch.update(["1", "0"], ["1", "1"], [0.9, 0.4])
    return PerformanceVerdict(
        "fraud", "v1", START, 60, 2, 2, 0, sketch, sketch.metrics(), None, "ok"
    )


def test_a_window_reported_twice_is_already_stored(sessions: sessionmaker[Session]) -> None:
    verdict = _verdict(_profile(sessions))
    with sessions.begin() as s:
        assert DriftReportRepository(s).add(verdict, NOW) is not None
    with sessions.begin() as s:
        assert DriftReportRepository(s).add(verdict, NOW) is None
        # The savepoint leaves the transaction usable for the caller's next write.
        assert PerformanceReportRepository(s).add(_performance(), NOW) is not None
    with sessions.begin() as s:
        assert PerformanceReportRepository(s).add(_performance(), NOW) is None
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(DriftReportRow)) == 1


def test_a_report_on_a_missing_profile_is_a_bug_not_a_duplicate(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s, pytest.raises(IntegrityViolation) as info:
        DriftReportRepository(s).add(_verdict(profile_id=424242), NOW)
    assert info.value.retriable is False
    if s.get_bind().dialect.name == "postgresql":
        assert info.value.constraint == "fk_drift_reports_profile_id_reference_profiles"
    else:
        assert "FOREIGN KEY constraint failed" in str(info.value)


def test_a_performance_report_missing_a_value_is_a_bug_not_a_duplicate(
    sessions: sessionmaker[Session],
) -> None:
    incomplete = replace(_performance(), verdict=None)
    with sessions.begin() as s, pytest.raises(IntegrityViolation) as info:
        PerformanceReportRepository(s).add(incomplete, NOW)
    assert "verdict" in str(info.value)


def test_violates_matches_only_the_named_constraint(sessions: sessionmaker[Session]) -> None:
    row = {"consumer_group": "g", "topic": "t", "partition": 0, "next_offset": 1}
    with sessions.begin() as s:
        s.add(ConsumerOffset(**row, watermark=None, updated_at=NOW))
    with sessions() as s, pytest.raises(IntegrityError) as info:
        s.add(ConsumerOffset(**row, watermark=None, updated_at=NOW))
        s.flush()
    table = ConsumerOffset.__table__
    assert violates(info.value, table, "pk_consumer_offsets")
    reports = DriftReportRow.__table__
    assert not violates(info.value, reports, "uq_drift_reports_window")
    with pytest.raises(LookupError):
        violates(info.value, table, "uq_no_such_thing")


def test_a_schema_that_is_not_there_is_not_retriable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with make_session_factory(engine)() as s, pytest.raises(StoreError) as info:
            WindowAggregateRepository(s).window_counts()
        assert info.value.retriable is False
        assert "no such table: window_aggregates" in str(info.value)
    finally:
        engine.dispose()


def test_a_database_that_cannot_be_opened_is_retriable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    try:
        with make_session_factory(engine)() as s, pytest.raises(StoreUnavailable) as info:
            OffsetRepository(s, "g").load("t", [0])
        assert info.value.retriable is True
    finally:
        engine.dispose()


def test_sqlite_busy_is_contention(sqlite_url: str) -> None:
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    engine = create_engine(sqlite_url, connect_args={"timeout": 0})
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
        with Session(engine) as s, pytest.raises(StoreContention) as info:
            advance = OffsetAdvance("t", 0, None, 5, None)
            OffsetRepository(s, "g").advance(advance, NOW)
        assert info.value.retriable is True
        assert "database is locked" in str(info.value)
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()


# -- PostgreSQL: connection loss and contention ---------------------------------------


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


def _seed_offset(engine: Engine) -> None:
    with make_session_factory(engine).begin() as s:
        OffsetRepository(s, "g").advance(OffsetAdvance("t", 0, None, 1, None), NOW)


def _move(s: Session, to: int) -> None:
    s.execute(update(ConsumerOffset).values(next_offset=to))


@pytest.mark.postgres
def test_a_connection_lost_mid_session_is_retriable(pg: Engine) -> None:
    _seed_offset(pg)
    admin = make_engine(pg.url.render_as_string(hide_password=False))
    with make_session_factory(pg)() as s:
        OffsetRepository(s, "g").load("t", [0])  # the session now holds a connection
        pid = s.scalar(select(func.pg_backend_pid()))
        with admin.begin() as conn:
            conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(StoreUnavailable) as info:
            OffsetRepository(s, "g").load("t", [0])
    admin.dispose()
    assert info.value.retriable is True


@pytest.mark.postgres
def test_a_lock_timeout_is_contention(pg: Engine) -> None:
    _seed_offset(pg)
    sessions = make_session_factory(pg)
    with sessions() as holder, sessions() as waiter:
        _move(holder, 2)  # holds the row lock until the end of the test
        waiter.execute(text("set local lock_timeout = '50ms'"))
        with pytest.raises(StoreContention) as info:
            OffsetRepository(waiter, "g").advance(OffsetAdvance("t", 0, 1, 3, None), NOW)
    assert "lock timeout" in str(info.value)


@pytest.mark.postgres
def test_a_serialization_failure_is_contention(pg: Engine) -> None:
    _seed_offset(pg)
    sessions = make_session_factory(pg.execution_options(isolation_level="REPEATABLE READ"))
    with sessions() as late:
        assert OffsetRepository(late, "g").load("t", [0])[0].next_offset == 1
        with sessions.begin() as early:  # commits a change after late's snapshot
            _move(early, 2)
        with pytest.raises(StoreContention, match="concurrent update") as info:
            OffsetRepository(late, "g").advance(OffsetAdvance("t", 0, 1, 3, None), NOW)
    assert info.value.retriable is True


@pytest.mark.postgres
def test_two_first_flushes_racing_on_one_partition_let_one_win(pg: Engine) -> None:
    """The loser's insert waits for the winner, then fails on the primary key: a conflict."""
    sessions = make_session_factory(pg)
    first = OffsetAdvance("t", 0, None, 5, None)
    results: list[object] = []

    def lose() -> None:
        with sessions() as loser, loser.begin():
            try:
                OffsetRepository(loser, "g").advance(replace(first, next_offset=7), NOW)
            except OffsetConflict as exc:
                results.append(exc.partitions)

    with sessions() as winner:
        assert OffsetRepository(winner, "g").advance(first, NOW)
        thread = threading.Thread(target=lose)
        thread.start()
        _wait_for_a_blocked_backend(pg, thread)
        winner.commit()
    thread.join()
    assert results == [[("t", 0)]]
    with sessions() as s:
        assert OffsetRepository(s, "g").load("t", [0])[0].next_offset == 5


def _wait_for_a_blocked_backend(engine: Engine, thread: threading.Thread) -> None:
    """Until some backend waits on a lock (the loser's insert behind the winner's row)."""
    waiting = text("select count(*) from pg_locks where not granted")
    with engine.connect() as conn:
        while thread.is_alive() and not conn.execute(waiting).scalar():
            conn.rollback()
            threading.Event().wait(0.05)


def test_a_transaction_translates_what_its_commit_raises(sessions: sessionmaker[Session]) -> None:
    row = {"consumer_group": "g", "topic": "t", "partition": 0, "next_offset": 1}
    with transaction(sessions) as s:
        s.add(ConsumerOffset(**row, watermark=None, updated_at=NOW))
    with pytest.raises(IntegrityViolation) as info, transaction(sessions) as s:
        s.add(ConsumerOffset(**row, watermark=None, updated_at=NOW))  # flushed by the commit
    assert isinstance(info.value.__cause__, IntegrityError)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(ConsumerOffset)) == 1


def test_a_report_added_in_a_transaction_that_fails_later_is_not_stored(
    sessions: sessionmaker[Session],
) -> None:
    """The savepoint of add() stays nested in the caller's transaction, on SQLite too."""
    verdict = _verdict(_profile(sessions))
    with pytest.raises(RuntimeError), sessions.begin() as s:
        s.scalar(select(func.count()).select_from(DriftReportRow))
        assert DriftReportRepository(s).add(verdict, NOW) is not None
        assert PerformanceReportRepository(s).add(_performance(), NOW) is not None
        raise RuntimeError("the caller fails after the reports were added")
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(DriftReportRow)) == 0
        assert PerformanceReportRepository(s).rows() == []
