"""An archive table's append cost over its life: Delta's default log retention against
driftwatch's.

Every flush appends once to each archived model's table, and every append adds an
entry to the table's Delta log. Under Delta's default retention (30 days) the
entries pile up, and an append's cost grows with them; driftwatch creates its
tables with a short retention (``archive.log_retention``), so each checkpoint
(every 100 commits) deletes the expired entries. The benchmark appends the same
small flushes (``--rows`` events) to two tables in turn with driftwatch's own
writer, in one process: one table created under Delta's defaults, the other as
driftwatch creates it. Time is compressed: the retention is ``--retention``
seconds instead of minutes, so that a few thousand appends show what a day of
flushes every few seconds would.

Last line: ``archive_log: <n> appends per table; Delta defaults: <ms> -> <ms>
ms/append (<k> log entries); driftwatch: <ms> -> <ms> ms/append (<k> log
entries); last/first: <x> vs <x>``: the mean append time over the second and the
last cycle of ``compact_every`` (50) appends to each table (a cycle holds every
count of small files alike; the first one creates the table), and how much it grew.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from _common import REPO  # noqa: F401  (puts the repository on sys.path)
from deltalake import write_deltalake

from db.archive import ArchiveSettings, ArchiveWriter, Kind, label_table

TOPIC = "labels"
MODELS = ("delta_defaults", "driftwatch")


def flush_rows(first: int, rows: int) -> pa.Table:
    """``rows`` labels of partition 0 from offset ``first`` on."""
    offsets = np.arange(first, first + rows, dtype=np.int64)
    return label_table(
        [f"e{o}" for o in offsets],
        [int(o % 2) for o in offsets],
        [1_780_000_000.0 + o for o in offsets],
        TOPIC,
        np.zeros(rows, np.int32),
        offsets,
    )


def log_entries(settings: ArchiveSettings, model: str) -> int:
    return len(list(Path(settings.table_uri(model, Kind.LABELS), "_delta_log").glob("*.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=3000, help="appends to each table")
    parser.add_argument("--rows", type=int, default=50, help="events per append")
    parser.add_argument(
        "--retention", type=float, default=10.0, help="driftwatch's log retention, seconds"
    )
    parser.add_argument("--quick", action="store_true", help="a few hundred appends")
    args = parser.parse_args()
    if args.quick:
        args.appends, args.retention = 300, 0.0
    if args.appends < 3 * ArchiveSettings().compact_every:
        parser.error("--appends must cover at least three compaction cycles")
    with tempfile.TemporaryDirectory(prefix="driftwatch-archive-log-") as tmp:
        settings = ArchiveSettings(uri=tmp, log_retention_seconds=args.retention)
        # The baseline table exists before the writer's first append, created as a
        # table without driftwatch's properties is: the writer then only appends to it.
        write_deltalake(
            settings.table_uri(MODELS[0], Kind.LABELS),
            flush_rows(0, 0),
            partition_by=["date"],
        )
        writer = ArchiveWriter(settings, "bench")
        took: dict[str, list[float]] = {m: [] for m in MODELS}
        for i in range(args.appends):
            rows = flush_rows(i * args.rows, args.rows)
            for model in MODELS:
                began = time.perf_counter()
                writer.append(model, Kind.LABELS, rows, {(TOPIC, 0): (i + 1) * args.rows})
                took[model].append(time.perf_counter() - began)
            if (i + 1) % 500 == 0:
                print(
                    f"{i + 1} appends: "
                    + ", ".join(
                        f"{m} {np.mean(took[m][-100:]) * 1000:.1f} ms ({log_entries(settings, m)} "
                        "log entries)"
                        for m in MODELS
                    ),
                    flush=True,
                )
        writer.compactions.wait()  # the log entries counted below are after the last one
        # Whole compaction cycles, so that both means see files of every count alike;
        # the first cycle also creates the tables.
        cycle = settings.compact_every
        end = args.appends // cycle * cycle
        first = {m: float(np.mean(took[m][cycle : 2 * cycle])) * 1000 for m in MODELS}
        last = {m: float(np.mean(took[m][end - cycle : end])) * 1000 for m in MODELS}
        parts = [
            f"{label}: {first[m]:.1f} -> {last[m]:.1f} ms/append "
            f"({log_entries(settings, m)} log entries)"
            for label, m in zip(("Delta defaults", "driftwatch"), MODELS, strict=True)
        ]
        growth = " vs ".join(f"{last[m] / first[m]:.2f}" for m in MODELS)
        print(f"archive_log: {args.appends} appends per table; {'; '.join(parts)}; ", end="")
        print(f"last/first: {growth}")


if __name__ == "__main__":
    main()
