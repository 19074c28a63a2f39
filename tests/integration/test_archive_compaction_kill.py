"""A writer killed (SIGKILL) while a compaction of its table is under way, before or
after the compaction's commit: the table holds every archived event once, and the
next writer replays nothing twice and compacts it again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable

from db.archive import ArchiveSettings, ArchiveWriter, Kind
from tests.harness.scenario import REPO
from tests.unit.db.test_archive import archived, labels

FLUSHES = 5  # of two labels each; the third asks for a compaction
# The child holds its compaction at the named step and reports each step on stdout.
CHILD = """
import sys, time
from db.archive import ArchiveSettings, ArchiveWriter, Kind
from db.archive.compactor import Compactor
from tests.unit.db.test_archive import labels

uri, step, flushes = sys.argv[1], sys.argv[2], int(sys.argv[3])

class Held(Compactor):
    def _optimize(self, table):
        if step == "before-commit":
            print("held", flush=True)
            time.sleep(3600)
        done = super()._optimize(table)
        print("held", flush=True)
        time.sleep(3600)
        return done

settings = ArchiveSettings(uri=uri, compact_every=3)
writer = ArchiveWriter(settings, "g")
writer.compactions = Held(settings, lambda: None)
for flush in range(flushes):
    offsets = [2 * flush, 2 * flush + 1]
    writer.append("m", Kind.LABELS, labels(offsets), {("l", 0): offsets[-1] + 1})
print("appended", flush=True)
time.sleep(3600)
"""


def kill_at(step: str, uri: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, uri, step, str(FLUSHES)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        # Both lines, in either order: the appends go on beside the held compaction.
        seen = {child.stdout.readline().strip() for _ in range(2)}
        assert seen == {"held", "appended"}, seen
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


@pytest.mark.parametrize("step", ["before-commit", "after-commit"])
def test_a_writer_killed_during_a_compaction_leaves_each_event_once(tmp_path: Path, step: str):
    settings = ArchiveSettings(uri=str(tmp_path / "archive"), compact_every=3)
    kill_at(step, settings.uri)
    uri = settings.table_uri("m", Kind.LABELS)
    committed = any(
        '"OPTIMIZE"' in entry.read_text() for entry in Path(uri, "_delta_log").glob("*.json")
    )
    assert committed is (step == "after-commit")
    assert archived(settings, "m") == [(0, o) for o in range(2 * FLUSHES)]
    # The next owner replays the same flushes from SQL's offsets, then goes on.
    writer = ArchiveWriter(settings, "g")
    for flush in range(FLUSHES):
        offsets = [2 * flush, 2 * flush + 1]
        assert writer.append("m", Kind.LABELS, labels(offsets), {("l", 0): offsets[-1] + 1}) == 0
    assert writer.append("m", Kind.LABELS, labels([10, 11]), {("l", 0): 12}) == 2
    assert writer.compact(uri) > 0
    assert len(DeltaTable(uri).file_uris()) == 1
    assert archived(settings, "m") == [(0, o) for o in range(2 * FLUSHES + 2)]
    writer.close()
