"""What a writer's own compaction costs a flush, at Delta's default target file size
and at driftwatch's (``ArchiveSettings.compact_target_bytes``).

A writer compacts a table itself every ``compact_every`` (50) appends, inside the
flush that makes the 50th. Bin-packing small files up to a target size rewrites
the partly filled file of the day with the new small ones, so the work grows with
that file until it reaches the target. The benchmark appends ``--appends`` flushes
of ``--rows`` twenty-feature prediction events (random values, one day) to two
local tables in turn, one writer compacting at Delta's default target (100 MB) and
one at driftwatch's, and prints the compacting appends' times and the Parquet
bytes each table wrote.

Last line: ``archive_compaction: <n> appends of <rows> events; compacting append
<ms> ms first, <ms> ms last, <ms> ms max at Delta's default; <ms>, <ms>, <ms> ms
at <MiB> MiB; Parquet written <MB> MB vs <MB> MB``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
from _common import REPO  # noqa: F401  (puts the repository on sys.path)

from db.archive import ArchiveSettings, ArchiveWriter, Kind, prediction_table
from drift.schema import FeatureKind, ModelSpec
from service.config import ModelConfig
from tests.harness.scenario import wide_model

DELTA_DEFAULT = 100 * 1024 * 1024  # deltalake's target when the table sets none


def flush_rows(spec: ModelSpec, first: int, rows: int, rng: np.random.Generator) -> pa.Table:
    features: dict[str, object] = {}
    for f in spec.features:
        if f.kind is FeatureKind.NUMERICAL:
            features[f.name] = rng.normal(size=rows)
        else:
            features[f.name] = [f"c{v}" for v in rng.integers(0, 50, rows)]
    offsets = np.arange(first, first + rows, dtype=np.int64)
    return prediction_table(
        spec,
        [f"e{o}" for o in offsets],
        ["v1"] * rows,
        1_780_000_000.0 + offsets / 1000,
        features,
        rng.random(rows),
        "predictions",
        np.zeros(rows, np.int32),
        offsets,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=400, help="appends to each table")
    parser.add_argument("--rows", type=int, default=2000, help="events per append")
    parser.add_argument("--quick", action="store_true", help="two compactions of small flushes")
    args = parser.parse_args()
    if args.quick:
        args.appends, args.rows = 100, 50
    spec = ModelConfig.model_validate(wide_model()).spec("wide")
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="driftwatch-archive-compaction-") as tmp:
        ours = ArchiveSettings(uri=str(Path(tmp) / "ours"))
        default = replace(ours, uri=str(Path(tmp) / "default"), compact_target_bytes=DELTA_DEFAULT)
        sides = {"default": default, "ours": ours}
        writers = {name: ArchiveWriter(s, "bench") for name, s in sides.items()}
        compacting: dict[str, list[float]] = {name: [] for name in sides}
        for i in range(args.appends):
            rows = flush_rows(spec, i * args.rows, args.rows, rng)
            for name, writer in writers.items():
                began = time.perf_counter()
                next_offsets = {("predictions", 0): (i + 1) * args.rows}
                writer.append("wide", Kind.PREDICTIONS, rows, next_offsets)
                if (i + 1) % ours.compact_every == 0:
                    compacting[name].append((time.perf_counter() - began) * 1000)
        written = {
            name: sum(f.stat().st_size for f in Path(s.uri).rglob("*.parquet")) / 1e6
            for name, s in sides.items()
        }
    d, o = compacting["default"], compacting["ours"]
    print(
        f"archive_compaction: {args.appends} appends of {args.rows} events; compacting append "
        f"{d[0]:.0f} ms first, {d[-1]:.0f} ms last, {max(d):.0f} ms max at Delta's default; "
        f"{o[0]:.0f}, {o[-1]:.0f}, {max(o):.0f} ms at "
        f"{ours.compact_target_bytes / 2**20:.0f} MiB; "
        f"Parquet written {written['default']:.0f} MB vs {written['ours']:.0f} MB"
    )


if __name__ == "__main__":
    main()
