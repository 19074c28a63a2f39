"""Window rows leave their bin edges to the layout, stored once per layout."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from db.layouts import LayoutRepository, SketchLayoutRow
from db.models import WindowAggregate
from db.repositories import WindowAggregateRepository, WindowDelta, WindowKey
from drift.errors import SketchCorrupt
from drift.schema import FeatureKind, FeatureSpec, ModelSpec, PredictionKind, PredictionSpec
from drift.sketch import WindowBatch, WindowSketch

NOW = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
START = 1_800_000_000
# Profile-sized bins: ~590 quantiles per numerical column, as a 500-bin profile gives
# (quantiles of data, which compress as badly as the real ones, unlike a linspace).
EDGES = tuple(np.unique(np.random.default_rng(0).normal(size=590) * 20).tolist())


def wide_spec(name: str = "fraud", shift: float = 0.0) -> ModelSpec:
    features = tuple(
        FeatureSpec(
            f"x{i}", FeatureKind.NUMERICAL, edges=tuple(e * (1 + i / 7) + shift for e in EDGES)
        )
        for i in range(20)
    )
    categorical = (FeatureSpec("country", FeatureKind.CATEGORICAL),)
    prediction = PredictionSpec(PredictionKind.NUMERICAL, EDGES)
    return ModelSpec(name, features + categorical, prediction, 60, sample_size=50)


def delta(spec: ModelSpec, seed: int, n: int = 50) -> WindowDelta:
    rng = np.random.default_rng(seed)
    sketch = WindowSketch.empty(spec)
    columns: dict[str, object] = {f"x{i}": rng.normal(size=n) * 10 for i in range(20)}
    columns["country"] = [str(c) for c in rng.choice(["de", "fr", "it"], size=n)]
    ids = [f"event-{k}" for k in rng.integers(0, 2**63, size=n)]
    sketch.update(WindowBatch(n, columns, rng.normal(size=n).tolist(), ids))  # type: ignore[arg-type]
    return WindowDelta(sketch)


def key(spec: ModelSpec, partition: int = 0) -> WindowKey:
    return WindowKey(spec.name, "v1", START, 60, partition, spec.layout)


def test_a_window_row_leaves_its_edges_to_its_layout_stored_once(
    sessions: sessionmaker[Session],
) -> None:
    spec = wide_spec()
    first, second, third = delta(spec, 1), delta(spec, 2), delta(spec, 3)
    with sessions.begin() as s:
        WindowAggregateRepository(s).add_all({key(spec, 0): first, key(spec, 1): second}, NOW)
    with sessions.begin() as s:
        WindowAggregateRepository(s).add(key(spec, 0), third, NOW + timedelta(seconds=1))
    expected = delta(spec, 1).sketch
    expected.merge(third.sketch)
    expected.merge(second.sketch)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(SketchLayoutRow)) == 1
        raw = s.scalars(select(WindowAggregate.sketch).order_by(WindowAggregate.partition)).all()
        # Without its edges a row of 50 events is a fraction of what it was with them.
        assert all(len(r) * 4 < len(expected.to_bytes()) for r in raw)
        with pytest.raises(SketchCorrupt, match="no lookup was given"):
            WindowSketch.from_bytes(raw[0])
        assert WindowSketch.from_bytes(raw[1], LayoutRepository(s).edges) == second.sketch
        merged = WindowAggregateRepository(s).window_sketch(spec.name, "v1", _start())
    assert merged == expected
    assert merged.layout == spec.layout


def test_a_row_stored_with_its_edges_is_merged_then_kept_without_them(
    sessions: sessionmaker[Session],
) -> None:
    # A row written before layouts were stored (format 2, edges inline).
    spec = wide_spec()
    old, new = delta(spec, 4), delta(spec, 5)
    with sessions.begin() as s:
        s.add(
            WindowAggregate(
                model=spec.name, model_version="v1", window_start=_start(),
                window_end=_start() + timedelta(seconds=60), partition=0, layout=spec.layout,
                event_count=old.sketch.events, late_count=0, sketch=old.sketch.to_bytes(),
                latency=None, updated_at=NOW,
            )
        )  # fmt: skip
    with sessions.begin() as s:
        WindowAggregateRepository(s).add(key(spec), new, NOW)
    expected = delta(spec, 4).sketch
    expected.merge(new.sketch)
    with sessions() as s:
        raw = s.scalars(select(WindowAggregate.sketch)).one()
        assert len(raw) * 4 < len(old.sketch.to_bytes())
        assert WindowSketch.from_bytes(raw, LayoutRepository(s).edges) == expected


def test_a_row_whose_layout_is_not_stored_is_reported_corrupt(
    sessions: sessionmaker[Session],
) -> None:
    spec = wide_spec("unstored", shift=0.125)
    raw = delta(spec, 6).sketch.to_bytes(edges=False)
    with sessions() as s, pytest.raises(SketchCorrupt, match=spec.layout):
        WindowSketch.from_bytes(raw, LayoutRepository(s).edges)


def test_models_with_their_own_bins_each_store_their_layout(
    sessions: sessionmaker[Session],
) -> None:
    a, b = wide_spec("a"), wide_spec("b", shift=0.5)
    with sessions.begin() as s:
        WindowAggregateRepository(s).add_all({key(a): delta(a, 7), key(b): delta(b, 8)}, NOW)
    with sessions() as s:
        stored = set(s.scalars(select(SketchLayoutRow.layout)))
        assert stored == {a.layout, b.layout}
        got = WindowAggregateRepository(s).window_sketch("b", "v1", _start())
    assert got == delta(b, 8).sketch


def test_replicas_storing_one_layout_at_once_both_commit(pg_url: str) -> None:
    """Both replicas find the layout missing; the second's insert waits for the first's
    transaction and then skips the key instead of failing its flush."""
    from db.session import make_engine, make_session_factory

    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    spec = wide_spec("raced")
    errors: list[BaseException] = []
    try:
        with sessions.begin() as first:
            WindowAggregateRepository(first).add(key(spec, 0), delta(spec, 9), NOW)

            def second() -> None:
                try:
                    with sessions.begin() as s:
                        WindowAggregateRepository(s).add(key(spec, 1), delta(spec, 10), NOW)
                except BaseException as exc:
                    errors.append(exc)

            thread = threading.Thread(target=second)
            thread.start()
            _wait_for_a_lock_wait(engine, errors)
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert errors == []
        with sessions() as s:
            assert s.scalar(select(func.count()).select_from(SketchLayoutRow)) == 1
            assert s.scalar(select(func.count()).select_from(WindowAggregate)) == 2
    finally:
        engine.dispose()


def _wait_for_a_lock_wait(engine: Engine, errors: list[BaseException]) -> None:
    """Return once a backend waits on a lock (the second replica's insert). Polled on
    a connection of its own: a transaction sees one snapshot of pg_stat_activity."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not errors:
        with engine.connect() as conn:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.02)
    raise AssertionError(f"the second replica never waited for the first's insert: {errors}")


def _start() -> datetime:
    return datetime.fromtimestamp(START, UTC)
