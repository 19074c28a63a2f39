"""Two drivers of one run export its data once: the writer holds a lock on the export
for as long as it writes, and a process that dies drops it."""

from __future__ import annotations

import fcntl
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from retrain.executors.fake import FakeExecutor
from retrain.lifecycle import Export, Loop
from retrain.phases import export
from retrain.settings import LoopSettings
from tests.unit.retrain.support import Clock, ParquetExporter, model_settings

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _loop(tmp_path: Path, exporter: ParquetExporter) -> Loop:
    return Loop(
        FakeExecutor(),
        {"fraud": model_settings()},
        LoopSettings(tmp_path / "runs", "file:///artifacts"),
        exporter,
        Clock(T0),
    )


def _due(tmp_path: Path) -> Export:
    return Export(
        "fraud", T0 - timedelta(days=1), T0, tmp_path / "runs" / "fraud-1" / "data.parquet"
    )


def _hold_lock(
    path: str, held: multiprocessing.synchronize.Event, stop: multiprocessing.synchronize.Event
) -> None:
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.set()
        stop.wait(60)


def test_an_export_another_process_is_writing_is_left_to_it(tmp_path: Path) -> None:
    exporter = ParquetExporter()
    due = _due(tmp_path)
    due.dest.parent.mkdir(parents=True)
    lock = f"{due.dest}.lock"
    held, stop = multiprocessing.Event(), multiprocessing.Event()
    other = multiprocessing.get_context("fork").Process(target=_hold_lock, args=(lock, held, stop))
    other.start()
    try:
        assert held.wait(30)
        assert export(_loop(tmp_path, exporter), due) is None
        assert exporter.calls == 0 and not due.dest.exists()
    finally:
        stop.set()
        other.join(30)
    # The holder is gone (as a killed one would be): the next attempt exports.
    assert export(_loop(tmp_path, exporter), due) is None
    assert exporter.calls == 1 and due.dest.exists()


def test_a_file_written_while_waiting_for_the_lock_is_not_written_again(tmp_path: Path) -> None:
    exporter = ParquetExporter()
    loop, due = _loop(tmp_path, exporter), _due(tmp_path)
    assert export(loop, due) is None
    assert export(loop, due) is None  # the driver's next tick would see the file first
    assert exporter.calls == 1
