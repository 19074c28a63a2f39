"""A writer's compactions run beside its appends: neither waits for, nor loses, the other."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from deltalake import DeltaTable

from db.archive import ArchiveSettings, ArchiveWriter, Kind
from db.archive.compactor import Compactor
from tests.unit.db.test_archive import archived, labels

WAIT = 60  # seconds; a deadline for the test, never a premise


class Gated(Compactor):
    """Each compaction says it has its snapshot, then waits to be let go."""

    def __init__(self, settings: ArchiveSettings) -> None:
        super().__init__(settings, failed=lambda: None)
        self.loaded = threading.Semaphore(0)
        self.go = threading.Event()
        self.tables: list[DeltaTable] = []
        self.done: list[int] = []

    def _optimize(self, table: DeltaTable) -> dict[str, object]:
        self.tables.append(table)
        self.loaded.release()
        assert self.go.wait(WAIT)
        done = super()._optimize(table)
        self.done.append(table.version())
        return done


def gated(settings: ArchiveSettings) -> tuple[ArchiveWriter, Gated]:
    writer = ArchiveWriter(settings, "g")
    writer.compactions = gate = Gated(settings)
    return writer, gate


def append(writer: ArchiveWriter, offsets: list[int], partition: int = 0, model: str = "m") -> int:
    return writer.append(
        model, Kind.LABELS, labels(offsets, partition), {("l", partition): offsets[-1] + 1}
    )


def files(settings: ArchiveSettings, model: str = "m") -> int:
    return len(DeltaTable(settings.table_uri(model, Kind.LABELS)).file_uris())


def test_appends_commit_while_a_compaction_of_their_table_is_under_way(tmp_path: Path):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=3)
    writer, gate = gated(settings)
    for flush in range(3):  # the third asks for a compaction, and returns before it runs
        assert append(writer, [flush]) == 1
    assert gate.loaded.acquire(timeout=WAIT)  # its snapshot holds the three files
    # Two more flushes commit meanwhile, one of another partition; the compaction then
    # commits over them, rewriting only the files it read.
    assert append(writer, [3, 4]) == 2
    assert append(writer, [0, 1], partition=1) == 2
    gate.go.set()
    assert writer.compactions.wait(WAIT)
    assert gate.done == [5], "the compaction's commit came after the two appends"
    assert files(settings) == 3
    # The writer's snapshot predates the compaction: its next append is rebased over it.
    assert append(writer, [5]) == 1
    assert writer.compactions.wait(WAIT)  # the one this append asked for
    assert archived(settings, "m") == [(0, o) for o in range(6)] + [(1, 0), (1, 1)]
    table = DeltaTable(settings.table_uri("m", Kind.LABELS))
    assert table.transaction_version("driftwatch:g:l:0") == 6
    assert table.transaction_version("driftwatch:g:l:1") == 2
    # A replay after it all still appends nothing.
    assert append(ArchiveWriter(settings, "g"), list(range(6))) == 0


def test_the_writers_snapshot_goes_to_the_compaction_and_back(tmp_path: Path):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=3)
    writer, gate = gated(settings)
    uri = settings.table_uri("m", Kind.LABELS)
    append(writer, [0])  # creates the table
    append(writer, [1])
    mine = writer._tables[uri]
    append(writer, [2])  # asks for a compaction
    assert gate.loaded.acquire(timeout=WAIT)
    assert gate.tables == [mine], "the compaction started from the writer's snapshot"
    assert uri not in writer._tables
    gate.go.set()
    assert writer.compactions.wait(WAIT)
    append(writer, [3])  # from the compaction's snapshot: no load of its own
    assert writer._tables[uri] is mine
    assert archived(settings, "m") == [(0, o) for o in range(4)]


def test_a_request_waiting_in_the_queue_holds_no_snapshot(tmp_path: Path):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=3)
    writer, gate = gated(settings)
    for offset in range(3):
        append(writer, [offset])  # m's compaction starts, and is held
    assert gate.loaded.acquire(timeout=WAIT)
    n = settings.table_uri("n", Kind.LABELS)
    for offset in range(3):
        append(writer, [offset], model="n")  # n's waits behind it
    held = writer._tables[n]
    append(writer, [3], model="n")
    assert writer._tables[n] is held, "n's appends go on from their own snapshot"
    gate.go.set()
    assert writer.compactions.wait(WAIT)
    assert gate.tables[1] is held, "n's compaction took n's snapshot when it started"
    assert files(settings, "n") == 1  # compacted when its turn came: all four appends
    assert archived(settings, "n") == [(0, o) for o in range(4)]


def test_while_a_compaction_is_under_way_its_table_asks_for_none_until_it_ended(
    tmp_path: Path,
):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=1)
    writer, gate = gated(settings)
    append(writer, [0])  # the first compaction starts and is held
    assert gate.loaded.acquire(timeout=WAIT)
    for offset in range(1, 5):  # each from a snapshot loaded meanwhile
        append(writer, [offset])
    gate.go.set()
    assert writer.compactions.wait(WAIT)
    assert len(gate.done) == 1
    append(writer, [5])  # the count went on: this one asks again
    assert writer.compactions.wait(WAIT)
    assert len(gate.done) == 2
    assert files(settings) == 1
    assert archived(settings, "m") == [(0, o) for o in range(6)]


def test_closing_waits_for_the_compaction_under_way_and_drops_the_queued_ones(
    tmp_path: Path,
):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=2)
    writer, gate = gated(settings)
    append(writer, [0])
    append(writer, [1])
    assert gate.loaded.acquire(timeout=WAIT)
    append(writer, [0], model="n")
    append(writer, [1], model="n")  # n's compaction waits behind m's
    assert writer.close(timeout=0) is False, "m's is still running"
    gate.go.set()
    assert writer.close(timeout=WAIT) is True
    assert len(gate.done) == 1
    assert files(settings, "n") == 2
    # Closed: no more compactions, though appends still work.
    append(writer, [2])
    append(writer, [3])
    assert writer.compactions.wait(WAIT)
    assert len(gate.done) == 1
    assert files(settings) == 3


def test_a_compaction_that_raises_anything_leaves_the_thread_serving_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=2)
    failures: list[None] = []

    class Once(Compactor):
        broken = True

        def _optimize(self, table: DeltaTable) -> dict[str, object]:
            if self.broken:
                self.broken = False
                raise MemoryError("no room")
            return super()._optimize(table)

    writer = ArchiveWriter(settings, "g")
    writer.compactions = Once(settings, lambda: failures.append(None))
    with caplog.at_level("WARNING", logger="db.archive.compactor"):
        for offset in range(4):
            append(writer, [offset])
            assert writer.compactions.wait(WAIT)
    assert failures == [None]
    assert [r.getMessage() for r in caplog.records] == [
        f"compacting {settings.table_uri('m', Kind.LABELS)} failed: MemoryError('no room')"
    ]
    assert files(settings) == 1
    assert archived(settings, "m") == [(0, o) for o in range(4)]
