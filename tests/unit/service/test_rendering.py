"""The latest-report renderer and its worker process."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import DriftReportRow, ReportHtmlRow
from db.reports import DriftReportRepository
from drift.html import decompress_html
from service.errors import RenderError
from service.monitoring.rendering import LatestHtml
from tests.unit.service.test_evaluation import (
    T0,
    Clock,
    aligned,
    build_profile,
    evaluator,
    ingest,
)


@pytest.fixture
def reported(sqlite_url: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A database holding two drift reports of model fraud, none rendered."""
    from db.session import make_engine, make_session_factory

    engine = make_engine(sqlite_url)
    sessions: sessionmaker[Session] = make_session_factory(engine)
    build_profile(sessions, tmp_path)
    ingest(sessions, replace(aligned(sessions), sample_size=200), windows=2, drift_at=None)
    assert len(evaluator(sessions, Clock(T0 + 3600)).tick()) == 2
    yield sessions
    engine.dispose()


def _spawned() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def _kill_worker(pool: ProcessPoolExecutor) -> None:
    os.kill(pool.submit(os.getpid).result(), signal.SIGKILL)  # as the OOM killer would


def test_a_worker_killed_between_renders_is_replaced_and_the_next_render_succeeds(
    reported: sessionmaker[Session],
) -> None:
    sessions = reported
    pools: list[ProcessPoolExecutor] = []

    def pool() -> ProcessPoolExecutor:
        pools.append(_spawned())
        return pools[-1]

    html = LatestHtml(sessions, clock=lambda: T0, pool_factory=pool)
    try:
        assert html.tick() == ["fraud"]
        _kill_worker(pools[0])
        with sessions.begin() as session:
            session.execute(delete(ReportHtmlRow))
        assert html.tick() == ["fraud"]
        assert len(pools) == 2
        with sessions() as session:
            stored = DriftReportRepository(session).html("fraud")
        assert stored is not None and "txn_per_hour" in decompress_html(stored[1])
    finally:
        html.close()


def test_a_worker_that_dies_twice_fails_the_tick_and_the_next_tick_renders(
    reported: sessionmaker[Session],
) -> None:
    pools: list[ProcessPoolExecutor] = []

    def pool() -> ProcessPoolExecutor:
        pools.append(_spawned())
        if len(pools) <= 2:
            _kill_worker(pools[-1])
        return pools[-1]

    html = LatestHtml(reported, clock=lambda: T0, pool_factory=pool)
    try:
        with pytest.raises(RenderError, match="the rendering worker died twice") as info:
            html.tick()
        assert info.value.retriable
        assert html.tick() == ["fraud"]
        assert len(pools) == 3
    finally:
        html.close()


def test_a_report_that_cannot_be_rendered_is_named_once_and_holds_back_no_other_model(
    reported: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    sessions = reported
    with sessions.begin() as session:  # the older report becomes another model's, damaged
        older = min(session.scalars(select(DriftReportRow.id)))
        session.execute(
            update(DriftReportRow)
            .where(DriftReportRow.id == older)
            .values(model="aardvark", current_sample=b"damaged")
        )
    submitted: list[object] = []

    def pool() -> ProcessPoolExecutor:
        spawned = _spawned()
        submit = spawned.submit

        def counted(fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            if args:  # not the worker's pid, asked for when it starts
                submitted.append(args)
            return submit(fn, *args, **kwargs)

        spawned.submit = counted  # type: ignore[method-assign]
        return spawned

    caplog.set_level(logging.ERROR, logger="service.monitoring.rendering")
    html = LatestHtml(sessions, clock=lambda: T0, pool_factory=pool)
    try:
        # aardvark sorts first: its report fails, and fraud's is rendered all the same.
        assert html.tick() == ["fraud"]
        assert html.tick() == []  # the failed report is not rendered again
        assert len(submitted) == 2
        (line,) = [r.getMessage() for r in caplog.records if r.name.endswith("rendering")]
        assert f"driftwatch report {older}: aardvark" in line
        assert "cannot be rendered: SketchCorrupt" in line and "other models go on" in line
        with sessions() as session:
            assert DriftReportRepository(session).html("aardvark") is None
    finally:
        html.close()
