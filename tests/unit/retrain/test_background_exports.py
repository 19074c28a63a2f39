"""Exports beside the tick (the service's way): one model's slow export holds back no
other model's run, and an export still ends each run once, as on the tick's thread.

A slow export is an export held on an event, so the premise (it is still running while
the other run's ticks go on) holds by construction; every wait has a deadline far
beyond any machine's pace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.archive.errors import ArchiveNotFound
from db.registry import RegistryRepository, Stage
from db.runs import RunRepository
from db.session import transaction
from retrain.exports import BackgroundExports, Finished
from retrain.lifecycle import ExportFailure, Loop, Phase
from retrain.policy import TriggerPolicy
from retrain.runs import RunDriver
from retrain.settings import LoopSettings
from tests.unit.retrain.support import T0, Clock, ParquetExporter, ScriptedExecutor, model_settings

DEADLINE = 60.0
MODELS = ("fraud", "churn")


class PerModelExporter:
    """Writes every model's data at once, except a held model's, which waits for
    ``release``; counts the calls per model."""

    def __init__(self, held: str | None = None) -> None:
        self.held = held
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: dict[str, int] = dict.fromkeys(MODELS, 0)
        self.error: Exception | None = None
        self.inner = ParquetExporter()

    def __call__(self, model: str, start: datetime, end: datetime, dest: str) -> int:
        self.calls[model] += 1
        if model == self.held:
            self.started.set()
            if not self.release.wait(2 * DEADLINE):
                raise AssertionError("the test never released the export")
        if self.error is not None:
            raise self.error
        return self.inner(model, start, end, dest)


class Rig:
    def __init__(self, sessions: sessionmaker[Session], tmp_path: Path, exporter: PerModelExporter):
        self.sessions = sessions
        self.executor = ScriptedExecutor()
        clock = Clock()
        models = {m: model_settings(model=m) for m in MODELS}
        settings = LoopSettings(tmp_path / "runs", "file:///artifacts")
        self.loop = Loop(self.executor, models, settings, exporter, clock)
        self.policy = TriggerPolicy(sessions, models, clock)
        with transaction(sessions) as s:
            for m in MODELS:
                RegistryRepository(s).register(
                    m, "v1", f"file:///{m}.skops", "a" * 64, Stage.PRODUCTION, T0
                )

    def driver(self, limit: int = 2) -> RunDriver:
        return RunDriver(self.sessions, self.loop, exports=BackgroundExports(limit))

    def start(self, model: str) -> int:
        decision = self.policy.request(model, "operator asked")
        assert decision.run_id is not None
        return decision.run_id

    def phase(self, run_id: int) -> str:
        with transaction(self.sessions) as s:
            run = RunRepository(s).get(run_id)
            assert run is not None
            return run.phase

    def reason(self, run_id: int) -> str | None:
        with transaction(self.sessions) as s:
            run = RunRepository(s).get(run_id)
            assert run is not None
            return run.failure_reason


def tick_until(driver: RunDriver, check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        driver.tick()
        time.sleep(0.02)


def held_fraud(
    sessions: sessionmaker[Session], tmp_path: Path, limit: int = 2
) -> tuple[Rig, PerModelExporter, RunDriver]:
    """A rig whose fraud exports wait for the test's release, and its driver."""
    exporter = PerModelExporter(held="fraud")
    rig = Rig(sessions, tmp_path, exporter)
    return rig, exporter, rig.driver(limit)


def test_a_held_export_holds_back_no_other_models_run(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    rig, exporter, driver = held_fraud(sessions, tmp_path)
    fraud, churn = rig.start("fraud"), rig.start("churn")
    try:
        # Each tick returns while fraud's export is held; churn's run goes on through them.
        assert driver.tick() == {fraud: Phase.PENDING, churn: Phase.PENDING}
        assert exporter.started.wait(DEADLINE)
        tick_until(driver, lambda: rig.phase(churn) == "training", "churn's training")
        assert list(rig.executor.starts) == ["driftwatch-churn-2-train"]
        rig.executor.succeed("driftwatch-churn-2-train", {"rows": {}})  # unusable: fails it
        tick_until(driver, lambda: rig.phase(churn) == "failed", "churn's verdict")
        assert rig.phase(fraud) == "pending" and not exporter.release.is_set()
    finally:
        exporter.release.set()
    tick_until(driver, lambda: rig.phase(fraud) == "training", "fraud's training")
    assert exporter.calls == {"fraud": 1, "churn": 1}
    assert rig.executor.starts == {"driftwatch-churn-2-train": 1, "driftwatch-fraud-1-train": 1}


def test_beyond_the_limit_an_export_waits_for_a_free_thread(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    rig, exporter, driver = held_fraud(sessions, tmp_path, limit=1)
    fraud, churn = rig.start("fraud"), rig.start("churn")
    try:
        assert driver.tick() == {fraud: Phase.PENDING, churn: Phase.PENDING}
        assert exporter.started.wait(DEADLINE)
        for _ in range(3):  # the one thread is fraud's: churn's export does not start
            assert driver.tick() == {fraud: Phase.PENDING, churn: Phase.PENDING}
        assert exporter.calls == {"fraud": 1, "churn": 0}
    finally:
        exporter.release.set()
    tick_until(
        driver,
        lambda: {rig.phase(fraud), rig.phase(churn)} == {"training"},
        "both runs' training",
    )
    assert exporter.calls == {"fraud": 1, "churn": 1}


def failing(
    sessions: sessionmaker[Session], tmp_path: Path, error: Exception
) -> tuple[Rig, PerModelExporter, int, RunDriver]:
    """A rig whose exports raise ``error``, a started run of fraud, a driver."""
    exporter = PerModelExporter()
    exporter.error = error
    rig = Rig(sessions, tmp_path, exporter)
    return rig, exporter, rig.start("fraud"), rig.driver()


def test_a_failed_background_export_fails_its_run_with_the_reason(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    rig, exporter, fraud, driver = failing(sessions, tmp_path, ArchiveNotFound("no archive"))
    tick_until(driver, lambda: rig.phase(fraud) == "failed", "the run to fail")
    assert rig.reason(fraud) == "exporting the training data failed: no archive"
    assert exporter.calls["fraud"] == 1 and not rig.executor.starts


def test_an_export_that_raised_is_raised_by_the_tick_and_started_again(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    rig, exporter, fraud, driver = failing(sessions, tmp_path, KeyError("a bug"))
    deadline = time.monotonic() + DEADLINE
    with pytest.raises(KeyError, match="a bug"):
        while time.monotonic() < deadline:
            driver.tick()
            time.sleep(0.02)
    assert exporter.calls["fraud"] == 1 and rig.phase(fraud) == "pending"
    exporter.error = None
    tick_until(driver, lambda: rig.phase(fraud) == "training", "the export's second try")
    assert exporter.calls["fraud"] == 2


def until_started(exports: BackgroundExports, run_id: int) -> threading.Event:
    """Asks for ``run_id``'s export until it starts; the event its work sets."""
    started = threading.Event()

    def work() -> ExportFailure | None:
        started.set()
        return ExportFailure(f"export of run {run_id}", retriable=True)

    deadline = time.monotonic() + DEADLINE
    while not started.is_set():
        assert exports.run(run_id, work) is None, "answered before it was started"
        assert time.monotonic() < deadline, f"run {run_id}'s export never started"
        time.sleep(0.01)
    return started


def test_an_outcome_is_given_once_and_forgotten_once_its_run_is_not_active() -> None:
    exports = BackgroundExports(limit=1)
    until_started(exports, 7)
    # With one thread, run 8's export starts only once run 7's has ended and its
    # outcome is recorded.
    until_started(exports, 8)
    exports.keep_only({8})  # run 7 ended meanwhile (cancelled): its outcome is dropped
    assert exports.run(7, lambda: None) is None  # not answered from what 7 left
    deadline = time.monotonic() + DEADLINE
    while (outcome := exports.run(8, lambda: None)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert outcome == Finished(ExportFailure("export of run 8", retriable=True))
    assert exports.run(8, lambda: None) is None  # collected once: a new export starts


def test_the_limit_must_let_one_export_run() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BackgroundExports(limit=0)
