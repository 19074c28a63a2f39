"""Migrations driven from code and the start-up revision check."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Engine, inspect, select

from db.errors import DatabaseNotMigrated
from db.late_labels import LateCursorRepository
from db.migrate import current_revision, head_revision, require_current, upgrade
from db.models import ConsumerOffset
from db.session import make_engine, make_session_factory

HINT = "driftwatch db upgrade --config <your config file>"


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    yield engine
    engine.dispose()


def test_require_current_refuses_an_empty_database(empty_sqlite: Engine) -> None:
    with pytest.raises(DatabaseNotMigrated) as info:
        require_current(empty_sqlite, HINT)
    message = str(info.value)
    assert "driftwatch db upgrade" in message
    assert message == (
        "database schema is at revision none (empty database), "
        f"this version needs {head_revision()}; run: {HINT}"
    )
    assert info.value.retriable is False


def test_current_revision_of_an_empty_database_is_none(empty_sqlite: Engine) -> None:
    assert current_revision(empty_sqlite) is None


def test_upgrade_creates_the_schema(empty_sqlite: Engine) -> None:
    upgrade(empty_sqlite)
    assert current_revision(empty_sqlite) == head_revision()
    require_current(empty_sqlite, HINT)  # does not raise
    tables = set(inspect(empty_sqlite).get_table_names())
    assert {"alembic_version", "consumer_offsets", "window_aggregates"} <= tables


def test_require_current_names_an_unknown_revision(empty_sqlite: Engine) -> None:
    upgrade(empty_sqlite)
    with empty_sqlite.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'zzzz'")
    with pytest.raises(DatabaseNotMigrated, match="at revision zzzz, this version needs"):
        require_current(empty_sqlite, HINT)


def test_upgrade_is_idempotent_and_keeps_data(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision()
        now = datetime(2026, 11, 21, tzinfo=UTC)
        sessions = make_session_factory(engine)
        with sessions.begin() as s:
            s.add(
                ConsumerOffset(
                    consumer_group="g",
                    topic="t",
                    partition=0,
                    next_offset=3,
                    watermark=None,
                    updated_at=now,
                )
            )
        upgrade(engine)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        require_current(engine, HINT)
        with sessions() as s:
            assert s.scalars(select(ConsumerOffset.next_offset)).all() == [3]
    finally:
        engine.dispose()


def test_migrations_build_exactly_what_the_models_describe(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from db.tables import metadata

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgrade_to_the_first_revision_drops_the_report_tables(empty_sqlite: Engine) -> None:
    from alembic import command

    from db.migrate import _config

    upgrade(empty_sqlite)
    cfg = _config()
    with empty_sqlite.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    tables = set(inspect(empty_sqlite).get_table_names())
    assert "drift_reports" not in tables and "window_aggregates" in tables
    upgrade(empty_sqlite)
    assert current_revision(empty_sqlite) == head_revision()


def test_the_late_join_starts_after_what_was_consumed_before_it_existed(
    empty_sqlite: Engine,
) -> None:
    upgrade(empty_sqlite, "0014")
    now = datetime(2026, 12, 5, tzinfo=UTC)
    with make_session_factory(empty_sqlite)() as s, s.begin():
        s.add(ConsumerOffset(consumer_group="g", topic="labels", partition=2, next_offset=41,
                             watermark=None, updated_at=now))  # fmt: skip
    upgrade(empty_sqlite)
    with make_session_factory(empty_sqlite)() as s:
        assert LateCursorRepository(s, "g").starts("labels") == {2: 41}
        assert LateCursorRepository(s, "g").cursors("fraud") == {}


def test_a_downgrade_puts_the_layout_edges_and_wide_counts_back_into_the_window_rows(
    empty_sqlite: Engine,
) -> None:
    from alembic import command

    from db.migrate import _config
    from db.models import WindowAggregate
    from db.repositories import WindowAggregateRepository, WindowDelta, WindowKey
    from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
    from drift.sketch import WindowBatch, WindowSketch

    spec = ModelSpec(
        "m",
        (FeatureSpec("x", FeatureKind.NUMERICAL, edges=(0.0, 1.0, 2.0)),),
        PredictionSpec(PredictionKind.NUMERICAL, (0.0, 0.5)),
        60,
    )
    sketch = WindowSketch.empty(spec)
    sketch.update(WindowBatch(3, {"x": [0.5, 1.5, None]}, [0.1, 0.7, 0.2]))
    upgrade(empty_sqlite)
    sessions = make_session_factory(empty_sqlite)
    with sessions.begin() as s:
        key = WindowKey("m", "v1", 1_800_000_000, 60, 0, spec.layout)
        WindowAggregateRepository(s).add(key, WindowDelta(sketch), datetime.now(UTC))
    cfg = _config()
    with empty_sqlite.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0017")
    with sessions() as s:
        raw = s.scalars(select(WindowAggregate.sketch)).one()
    state = msgspec.msgpack.decode(zlib.decompress(raw))
    # As revision 0017's code wrote it: format 3, 8-byte counts (nine fields per column).
    assert state["v"] == 3 and {len(c) for _, c in state["features"]} == {9}
    assert WindowSketch.from_bytes(raw, lambda _: sketch.layout_edges()) == sketch
    with empty_sqlite.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0016")
    assert "sketch_layouts" not in inspect(empty_sqlite).get_table_names()
    with sessions() as s:
        raw = s.scalars(select(WindowAggregate.sketch)).one()
    assert WindowSketch.from_bytes(raw) == sketch  # no lookup: the edges are inline again
    upgrade(empty_sqlite)
    assert current_revision(empty_sqlite) == head_revision()
