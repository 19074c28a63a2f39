"""``runs cancel`` while a run's export is in progress: the export runs outside the run's
row lock, so the cancel neither waits for it nor is undone by it.

On PostgreSQL, where the row lock is real (``FOR UPDATE``). The export is held on an
event: the premise (an export in progress while the cancel runs) holds by
construction, and every wait has a deadline far beyond any machine's pace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import make_engine, make_session_factory, transaction
from retrain.lifecycle import Phase
from service.cli import main
from service.config import load_config
from service.wiring.retraining import build_retraining
from tests.unit.retrain.support import T0, ParquetExporter, ScriptedExecutor
from tests.unit.retrain.test_runs import TRAIN
from tests.unit.service.test_cli_retrain import write_config

pytestmark = pytest.mark.postgres

DEADLINE = 60.0


class HeldExporter:
    """An export that begins, then waits for ``release`` before writing its file."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.inner = ParquetExporter()

    def __call__(self, model: str, start: datetime, end: datetime, dest: str) -> int:
        self.started.set()
        if not self.release.wait(2 * DEADLINE):  # outlasts the cancel's deadline
            raise AssertionError("the test never released the export")
        rows = self.inner(model, start, end, dest)
        self.finished.set()
        return rows


class Worker(threading.Thread):
    """Runs ``work`` once, keeping its result or what it raised."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # handed to the test, which raises it
            self.error = exc

    def outcome(self) -> Any:
        self.join(DEADLINE)
        assert not self.is_alive(), "the worker did not finish within the deadline"
        if self.error is not None:
            raise self.error
        return self.result


def test_runs_cancel_completes_while_the_runs_export_is_in_progress(
    pg_url: str, tmp_path: Path
) -> None:
    cfg = write_config(pg_url, tmp_path)
    config = load_config(cfg, env={})
    engine = make_engine(config.database.url)
    sessions = make_session_factory(engine)
    with transaction(sessions) as s:
        RegistryRepository(s).register("fraud", "v1", "file:///v1", "a" * 64, Stage.PRODUCTION, T0)
    exporter, executor = HeldExporter(), ScriptedExecutor()
    retraining = build_retraining(config, sessions, executor=executor, exporter=exporter)
    run_id = retraining.policy.request("fraud", "operator asked").run_id
    assert run_id is not None
    ticking = Worker(retraining.driver.tick)
    ticking.start()
    try:
        assert exporter.started.wait(DEADLINE), "the tick never began the export"
        cancelling = Worker(lambda: main(["runs", "cancel", str(run_id), "--config", cfg]))
        cancelling.start()
        # The export is still held here: the cancel finished while it was in progress.
        assert cancelling.outcome() == 0
        assert not exporter.release.is_set() and not exporter.finished.is_set()
    finally:
        exporter.release.set()
    # The export finishes after the cancel; it neither revives the run nor launches a job.
    assert ticking.outcome() == {run_id: Phase.CANCELLED}
    assert exporter.finished.is_set()
    assert retraining.driver.tick() == {}
    with transaction(sessions) as s:
        runs = RunRepository(s)
        run = runs.get(run_id)
        assert run is not None and run.phase == "cancelled"
        assert [p.phase for p in runs.history(run_id)] == ["pending", "cancelled"]
    assert TRAIN not in executor.launches
    engine.dispose()
