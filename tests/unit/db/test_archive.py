"""The archive writer: each event once, whatever is replayed or raced."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from db.archive import ArchiveSettings, ArchiveWriter, Kind, label_table

T0 = datetime(2026, 11, 20, tzinfo=UTC).timestamp()


def labels(offsets: list[int], partition: int = 0, topic: str = "l") -> pa.Table:
    return label_table(
        [f"e{o}" for o in offsets],
        [o % 2 for o in offsets],
        [T0 + o for o in offsets],
        topic,
        np.full(len(offsets), partition, np.int32),
        np.asarray(offsets, np.int64),
    )


def archived(settings: ArchiveSettings, model: str) -> list[tuple[int, int]]:
    """(partition, offset) of every archived label row, read with deltalake alone."""
    frame = DeltaTable(settings.table_uri(model, Kind.LABELS)).to_pandas()
    return sorted(zip(frame["partition"].tolist(), frame["offset"].tolist(), strict=True))


@pytest.fixture
def settings(tmp_path: Path) -> ArchiveSettings:
    return ArchiveSettings(uri=str(tmp_path / "archive"))


def test_a_replayed_flush_appends_nothing_and_a_longer_one_only_the_new_events(settings):
    writer = ArchiveWriter(settings, "g")
    assert writer.append("m", Kind.LABELS, labels(list(range(10))), {("l", 0): 10}) == 10
    # The SQL commit failed after the append: the same flush again, from a fresh process.
    again = ArchiveWriter(settings, "g")
    assert again.append("m", Kind.LABELS, labels(list(range(10))), {("l", 0): 10}) == 0
    assert again.append("m", Kind.LABELS, labels(list(range(5, 15))), {("l", 0): 15}) == 5
    assert archived(settings, "m") == [(0, o) for o in range(15)]
    table = DeltaTable(settings.table_uri("m", Kind.LABELS))
    assert table.transaction_version("driftwatch:g:l:0") == 15


def test_models_sharing_a_partition_each_skip_only_their_own_archived_events(settings):
    writer = ArchiveWriter(settings, "g")
    # One flush of partition 0 (next offset 6): a's events at even offsets, b's at odd.
    # A crash after a's append and before b's: the replay skips a's and appends b's.
    writer.append("a", Kind.LABELS, labels([0, 2, 4]), {("l", 0): 6})
    replay = ArchiveWriter(settings, "g")
    assert replay.append("a", Kind.LABELS, labels([0, 2, 4]), {("l", 0): 6}) == 0
    assert replay.append("b", Kind.LABELS, labels([1, 3, 5]), {("l", 0): 6}) == 3
    # Later flushes with events of b only leave a's version where it was: an event of
    # a is archived iff its offset is below a's version.
    replay.append("b", Kind.LABELS, labels([6, 7]), {("l", 0): 9})
    assert replay.append("a", Kind.LABELS, labels([8]), {("l", 0): 9}) == 1
    assert archived(settings, "a") == [(0, 0), (0, 2), (0, 4), (0, 8)]
    assert archived(settings, "b") == [(0, 1), (0, 3), (0, 5), (0, 6), (0, 7)]


def test_partitions_and_topics_have_their_own_versions(settings):
    writer = ArchiveWriter(settings, "g")
    rows = pa.concat_tables([labels([0, 1], partition=0), labels([0, 1, 2], partition=1)])
    writer.append("m", Kind.LABELS, rows, {("l", 0): 2, ("l", 1): 3})
    again = pa.concat_tables([labels([0, 1, 2], partition=0), labels([2, 3], partition=1)])
    assert writer.append("m", Kind.LABELS, again, {("l", 0): 3, ("l", 1): 4}) == 2
    other_topic = labels([0, 1], partition=0, topic="other")
    assert writer.append("m", Kind.LABELS, other_topic, {("other", 0): 2}) == 2
    assert len(archived(settings, "m")) == 9


class _Stale(ArchiveWriter):
    """A zombie replica: its first look at the table is a snapshot from before the winner's."""

    def __init__(self, settings: ArchiveSettings, snapshot: DeltaTable) -> None:
        super().__init__(settings, "g")
        self._snapshot: DeltaTable | None = snapshot
        self.loads = 0

    def _load(self, uri: str, reuse: bool = False) -> DeltaTable | None:
        self.loads += 1
        if self._snapshot is not None:
            snapshot, self._snapshot = self._snapshot, None
            self._tables[uri] = snapshot
            return snapshot
        return super()._load(uri, reuse)


def test_two_replicas_racing_on_a_partition_archive_each_event_once(settings):
    first = ArchiveWriter(settings, "g")
    first.append("m", Kind.LABELS, labels([0, 1]), {("l", 0): 2})
    before = DeltaTable(settings.table_uri("m", Kind.LABELS))
    # The new owner appends offsets 2..5 while the old one, having read the table
    # before that commit, appends 2..3: Delta refuses the old one's commit (same app
    # id), and its retry sees the winner's version and has nothing left to add.
    ArchiveWriter(settings, "g").append("m", Kind.LABELS, labels([2, 3, 4, 5]), {("l", 0): 6})
    zombie = _Stale(settings, before)
    assert zombie.append("m", Kind.LABELS, labels([2, 3]), {("l", 0): 4}) == 0
    assert zombie.loads == 2
    assert archived(settings, "m") == [(0, o) for o in range(6)]


def test_a_writer_rereads_the_versions_once_another_writer_has_committed(settings):
    """A writer keeps the app transaction versions it read and wrote while the table
    holds no commit but its own; another replica's append makes it read them again."""
    old = ArchiveWriter(settings, "g")
    old.append("m", Kind.LABELS, labels([0, 1]), {("l", 0): 2})
    old.append("m", Kind.LABELS, labels([2, 3]), {("l", 0): 4})  # version 4 known, unread
    # The partition moved: its new owner archives 4..6, then it comes back to the old one,
    # which reads from the offset in SQL (7) on, and a replay of the new owner's last
    # flush (4..6) as well.
    ArchiveWriter(settings, "g").append("m", Kind.LABELS, labels([4, 5, 6]), {("l", 0): 7})
    assert old.append("m", Kind.LABELS, labels([4, 5, 6, 7, 8]), {("l", 0): 9}) == 2
    assert archived(settings, "m") == [(0, o) for o in range(9)]
    # Its own commits since: nothing to read again, and a replay still appends nothing.
    reads = _CountingReads.install(old)
    assert old.append("m", Kind.LABELS, labels([9]), {("l", 0): 10}) == 1
    assert old.append("m", Kind.LABELS, labels([8, 9]), {("l", 0): 10}) == 0
    assert reads.count == 0
    assert archived(settings, "m") == [(0, o) for o in range(10)]


class _CountingReads:
    """Counts the app transaction versions a writer's tables are asked for."""

    def __init__(self) -> None:
        self.count = 0

    @classmethod
    def install(cls, writer: ArchiveWriter) -> _CountingReads:
        counter = cls()
        load = writer._load

        def counted(uri: str, reuse: bool = False) -> DeltaTable | None:
            table = load(uri, reuse)
            if table is not None and not hasattr(table, "_counted"):
                read = table.transaction_version

                def counting(app_id: str) -> int | None:
                    counter.count += 1
                    return read(app_id)

                table.transaction_version = counting  # type: ignore[method-assign]
                table._counted = True  # type: ignore[attr-defined]
            return table

        writer._load = counted  # type: ignore[method-assign]
        return counter


def test_a_record_twice_in_one_append_is_archived_once(settings):
    writer = ArchiveWriter(settings, "g")
    rows = pa.concat_tables([labels([0, 1, 2]), labels([1, 2, 3]), labels([1], topic="other")])
    assert writer.append("m", Kind.LABELS, rows, {("l", 0): 4, ("other", 0): 2}) == 5
    assert archived(settings, "m") == [(0, 0), (0, 1), (0, 1), (0, 2), (0, 3)]
    frame = DeltaTable(settings.table_uri("m", Kind.LABELS)).to_pandas()
    assert sorted(zip(frame["topic"], frame["offset"], strict=True)) == [
        ("l", 0), ("l", 1), ("l", 2), ("l", 3), ("other", 1)
    ]  # fmt: skip


def test_a_writer_compacts_a_table_every_compact_every_appends_and_loses_nothing(
    tmp_path: Path,
) -> None:
    # Each flush adds a file; an append's cost grows with the files a table holds.
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=5)
    writer = ArchiveWriter(settings, "g")
    for flush in range(12):
        offsets = list(range(flush * 3, flush * 3 + 3))
        assert writer.append("m", Kind.LABELS, labels(offsets), {("l", 0): offsets[-1] + 1}) == 3
        writer.compactions.wait()  # each at once, to count the files below
    table = DeltaTable(settings.table_uri("m", Kind.LABELS))
    # Compacted after appends 5 and 10 (one file each time), then two more appends.
    assert len(table.file_uris()) == 3
    assert archived(settings, "m") == [(0, o) for o in range(36)]
    assert table.transaction_version("driftwatch:g:l:0") == 36
    # The application transactions survive compaction: a replay still adds nothing.
    replay = ArchiveWriter(settings, "g")
    assert replay.append("m", Kind.LABELS, labels(list(range(30, 36))), {("l", 0): 36}) == 0


def test_a_failed_compaction_is_logged_as_a_warning_counted_and_fails_no_flush(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=3)
    failures: list[None] = []
    writer = ArchiveWriter(settings, "g", compaction_failed=lambda: failures.append(None))
    writer.append("m", Kind.LABELS, labels([0]), {("l", 0): 1})
    writer.append("m", Kind.LABELS, labels([1]), {("l", 0): 2})
    uri = settings.table_uri("m", Kind.LABELS)
    # A data file gone from under the table: the compaction cannot read it.
    Path(DeltaTable(uri).file_uris()[0]).unlink()
    with caplog.at_level("WARNING", logger="db.archive.compactor"):
        assert writer.append("m", Kind.LABELS, labels([2]), {("l", 0): 3}) == 1
        assert writer.compactions.wait(timeout=60)
    assert failures == [None]
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records] == [
        ("WARNING", f"compacting {uri} failed")
    ]
    assert DeltaTable(uri).transaction_version("driftwatch:g:l:0") == 3


def test_a_writer_whose_snapshot_predates_the_kept_log_still_archives_each_event_once(
    tmp_path: Path,
):
    """Replicas share a model's table: one that appends rarely holds a snapshot older than
    the log entries another's checkpoints keep (retention zero here, ten minutes by
    default), and its next append must still see what the table holds."""
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), log_retention_seconds=0)
    rare, busy = ArchiveWriter(settings, "g"), ArchiveWriter(settings, "g")
    rare.append("m", Kind.LABELS, labels([0, 1]), {("l", 0): 2})
    for offset in range(110):  # a checkpoint at version 100 deletes the entries before it
        busy.append("m", Kind.LABELS, labels([offset], partition=1), {("l", 1): offset + 1})
    busy.compactions.wait()  # its compactions delete the expired entries
    log = Path(settings.table_uri("m", Kind.LABELS), "_delta_log")
    assert not (log / f"{1:020d}.json").exists()
    assert rare.append("m", Kind.LABELS, labels([0, 1, 2, 3]), {("l", 0): 4}) == 2
    assert archived(settings, "m") == [(0, o) for o in range(4)] + [(1, o) for o in range(110)]


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _refreshes(writer: ArchiveWriter, uri: str) -> list[None]:
    """Records each refresh of the snapshot the writer holds of ``uri``."""
    table = writer._tables[uri]
    calls: list[None] = []
    refresh = table.update_incremental

    def counting() -> None:
        calls.append(None)
        refresh()

    table.update_incremental = counting  # type: ignore[method-assign]
    return calls


def test_a_writer_appends_from_its_own_snapshot_until_half_the_log_retention_passed(settings):
    clock = _Clock()
    writer = ArchiveWriter(settings, "g", clock=clock)
    writer.append("m", Kind.LABELS, labels([0]), {("l", 0): 1})  # creates the table
    writer.append("m", Kind.LABELS, labels([1]), {("l", 0): 2})
    calls = _refreshes(writer, settings.table_uri("m", Kind.LABELS))
    clock.now += settings.log_retention_seconds / 2 - 1
    assert writer.append("m", Kind.LABELS, labels([2, 3]), {("l", 0): 4}) == 2
    assert calls == []
    # The last commit left the snapshot current; half the retention after it, it is read again.
    clock.now += settings.log_retention_seconds / 2
    assert writer.append("m", Kind.LABELS, labels([4]), {("l", 0): 5}) == 1
    assert len(calls) == 1
    assert archived(settings, "m") == [(0, o) for o in range(5)]


def test_a_snapshot_behind_other_writers_commits_still_archives_each_event_once(settings):
    uri = settings.table_uri("m", Kind.LABELS)
    mine, other = ArchiveWriter(settings, "g", clock=_Clock()), ArchiveWriter(settings, "g")
    mine.append("m", Kind.LABELS, labels([0]), {("l", 0): 1})  # creates the table
    mine.append("m", Kind.LABELS, labels([1]), {("l", 0): 2})
    calls = _refreshes(mine, uri)
    # The partition moved and came back: its other owner archived 2..5 meanwhile, after a
    # commit of another partition. Delta checks each commit since the snapshot and refuses
    # ours (the second carries our app id); the retry reloads the table and appends only
    # what the other writer had not.
    other.append("m", Kind.LABELS, labels([0, 1, 2], partition=1), {("l", 1): 3})
    other.append("m", Kind.LABELS, labels([2, 3, 4, 5]), {("l", 0): 6})
    assert mine.append("m", Kind.LABELS, labels([2, 3, 4, 5, 6, 7]), {("l", 0): 8}) == 2
    assert calls == []
    # Another partition's commit since: Delta rebases ours over it, no reload needed.
    held = mine._tables[uri]
    other.append("m", Kind.LABELS, labels([3], partition=1), {("l", 1): 4})
    assert mine.append("m", Kind.LABELS, labels([0, 1], partition=2), {("l", 2): 2}) == 2
    assert mine._tables[uri] is held
    expected = [(0, o) for o in range(8)] + [(1, o) for o in range(4)] + [(2, 0), (2, 1)]
    assert archived(settings, "m") == expected
    table = DeltaTable(uri)
    assert table.version() == 6
    assert table.transaction_version("driftwatch:g:l:0") == 8


def test_appends_leave_expired_log_entries_to_the_writers_compactions(tmp_path: Path):
    """deltalake would list the whole log after every commit to find expired entries;
    appends skip that, and a compaction deletes those a checkpoint covers."""
    settings = ArchiveSettings(
        uri=str(tmp_path / "archive"), log_retention_seconds=0, compact_every=1000
    )
    writer = ArchiveWriter(settings, "g")
    for offset in range(105):  # a checkpoint at version 100
        writer.append("m", Kind.LABELS, labels([offset]), {("l", 0): offset + 1})
    log = Path(settings.table_uri("m", Kind.LABELS), "_delta_log")
    assert (log / f"{1:020d}.json").exists()
    writer.compact(settings.table_uri("m", Kind.LABELS))
    assert not (log / f"{1:020d}.json").exists()
    assert (log / f"{104:020d}.json").exists()
    assert archived(settings, "m") == [(0, o) for o in range(105)]


def test_a_writers_compactions_pack_files_only_up_to_its_target_size(tmp_path: Path):
    """Each of a writer's compactions rewrites at most about the target's worth of files:
    with Delta's default (100 MB) every one rewrote the day's whole growing file."""
    target = 48 * 1024
    settings = ArchiveSettings(
        uri=str(tmp_path / "archive"), compact_every=10, compact_target_bytes=target
    )
    writer = ArchiveWriter(settings, "g")
    for flush in range(60):
        offsets = list(range(flush * 500, (flush + 1) * 500))
        writer.append("m", Kind.LABELS, labels(offsets), {("l", 0): offsets[-1] + 1})
    writer.compactions.wait()
    table = DeltaTable(settings.table_uri("m", Kind.LABELS))
    sizes = pa.table(table.get_add_actions(flatten=True)).column("size_bytes").to_pylist()
    assert sum(sizes) > 4 * target, "enough data for several target-sized files"
    assert max(sizes) < 2 * target
    assert len(sizes) < 60, "the appends' files were compacted"
    assert archived(settings, "m") == [(0, o) for o in range(60 * 500)]
