"""What a writer's own compactions cost its flushes: in the flush, at Delta's default
target file size and at driftwatch's (``ArchiveSettings.compact_target_bytes``), and
on the writer's compaction thread, as driftwatch runs them.

A writer compacts a table itself every ``compact_every`` (50) appends. Bin-packing
small files up to a target size rewrites the partly filled file of the day with the
new small ones, so the work grows with that file until it reaches the target. Run
inside the append that asked for it, the compaction held up that flush; on the
compaction thread (:mod:`db.archive.compactor`) it runs beside the next appends.
The benchmark appends ``--appends`` flushes of ``--rows`` twenty-feature prediction
events (random values, one day) to four local tables, one side after the other in
this process: compacting inside the append at Delta's default target (100 MB), inside
it at driftwatch's, and beside it at driftwatch's, on the writer's compaction
thread, with the appends back to back (each the next runs into the compaction under
way, and loads the table itself) and with them started ``--interval`` seconds apart,
as flushes are (every 2 seconds by default; 2,000 events a flush is 1,000 events/s).
It prints each side's append times and the Parquet bytes each table wrote.

Last line: ``archive_compaction: <n> appends of <rows> events; append p50/p99/max
<ms>/<ms>/<ms> ms compacting inside it at Delta's default, <ms>/<ms>/<ms> at <MiB>
MiB; beside it <ms>/<ms>/<ms> back to back, <ms>/<ms>/<ms> <s> s apart (p99 <ratio>
and <ratio> of inside); Parquet written <MB>, <MB>, <MB>, <MB> MB``.
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
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between spaced flushes' starts"
    )
    parser.add_argument("--quick", action="store_true", help="a compaction of small flushes")
    args = parser.parse_args()
    if args.quick:
        args.appends, args.rows, args.interval = 60, 50, 0.02
    spec = ModelConfig.model_validate(wide_model()).spec("wide")
    with tempfile.TemporaryDirectory(prefix="driftwatch-archive-compaction-") as tmp:
        ours = ArchiveSettings(uri=str(Path(tmp) / "busy"))
        # The inline sides' writers never ask for a compaction: the bench runs each itself.
        inline = replace(ours, uri=str(Path(tmp) / "inline"), compact_every=args.appends + 1)
        default = replace(
            inline, uri=str(Path(tmp) / "default"), compact_target_bytes=DELTA_DEFAULT
        )
        spaced = replace(ours, uri=str(Path(tmp) / "spaced"))
        sides = {"default": default, "inline": inline, "busy": ours, "spaced": spaced}
        times = {
            name: _appends(
                s,
                spec,
                args,
                inside=name in ("default", "inline"),
                interval=args.interval if name == "spaced" else 0.0,
            )
            for name, s in sides.items()
        }
        written = {
            name: sum(f.stat().st_size for f in Path(s.uri).rglob("*.parquet")) / 1e6
            for name, s in sides.items()
        }
    d, i, b, p = (_summary(times[name]) for name in sides)
    print(
        f"archive_compaction: {args.appends} appends of {args.rows} events; append "
        f"p50/p99/max {d} ms compacting inside it at Delta's default, {i} at "
        f"{ours.compact_target_bytes / 2**20:.0f} MiB; beside it {b} back to back, {p} "
        f"{args.interval:g} s apart (p99 {_p99(times['busy']) / _p99(times['inline']):.2f} and "
        f"{_p99(times['spaced']) / _p99(times['inline']):.2f} of inside); Parquet written "
        + ", ".join(f"{written[name]:.0f}" for name in sides)
        + " MB"
    )


def _appends(
    settings: ArchiveSettings,
    spec: ModelSpec,
    args: argparse.Namespace,
    inside: bool,
    interval: float,
) -> list[float]:
    """Each append's milliseconds; ``inside``: the bench compacts in the append itself
    (the writer asks for none), else the writer's compaction thread does. The appends
    start ``interval`` seconds apart, as flushes do (0: back to back)."""
    rng = np.random.default_rng(7)  # the same flushes for each side
    writer = ArchiveWriter(settings, "bench")
    uri = settings.table_uri("wide", Kind.PREDICTIONS)
    every = ArchiveSettings().compact_every
    times: list[float] = []
    for i in range(args.appends):
        rows = flush_rows(spec, i * args.rows, args.rows, rng)
        began = time.perf_counter()
        writer.append("wide", Kind.PREDICTIONS, rows, {("predictions", 0): (i + 1) * args.rows})
        if inside and (i + 1) % every == 0:
            writer.compact(uri)
        times.append((time.perf_counter() - began) * 1000)
        time.sleep(max(0.0, began + interval - time.perf_counter()))
    writer.compactions.wait()
    writer.close()
    return times


def _p99(ms: list[float]) -> float:
    return float(np.percentile(ms, 99))


def _summary(ms: list[float]) -> str:
    p50, p99 = np.percentile(ms, [50, 99])
    return f"{p50:.0f}/{p99:.0f}/{max(ms):.0f}"


if __name__ == "__main__":
    main()
