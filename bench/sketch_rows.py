"""Window rows with many models: a few events per column, and the flush's re-encoding.

With many models sharing a stream, a poll brings each window a few events at a
time, and every flush decodes, merges and re-encodes each window row it touches.
This runs both halves in one process, for windows of a scale-bench model (22
numerical features on 589 profile edges each, 8 categorical, a numerical
prediction), the baseline and the candidate in alternating rounds:

- ``update``: a window takes one batch of N events, through numpy's histogram
  path for every column (the baseline, as before issue 22's small-batch path)
  against the current path (Python below ``drift.histogram.SMALL_BATCH``
  values for one column, below ``SMALL_BLOCK`` for a model's dense columns
  together);
- ``to_bytes`` and ``from_bytes``: the window row, once with the events of 30
  such batches, in format 3 (8-byte counts, as written before) against format 4
  (counts as narrow as they fit), and the stored bytes of each.

Each figure is the median over the rounds of the mean time of a round's repeats.
Last line: ``sketch_rows: 3 events/batch: update <r> of numpy, to_bytes <r> of
format 3, from_bytes <r>, bytes <r>; 8 events/batch: ...; 2000 events/batch:
...`` (candidate over baseline: below 1 is faster or smaller). ``--quick`` runs few repeats, for the
smoke test (its ratios mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time
import zlib
from collections.abc import Callable
from typing import Any

import _common  # noqa: F401 -- puts the repository on sys.path
import msgspec
import numpy as np

from drift import histogram
from drift.histogram import NumericSketch
from drift.schema import FeatureKind, ModelSpec
from drift.sketch import ColumnSketch, WindowBatch, WindowSketch
from service.config import ModelConfig
from tests.harness.scenario import wide_model

SIZES = (3, 8, 2000)
BATCHES_PER_ROW = 30


def scale_spec() -> ModelSpec:
    """The scale bench's model, its numerical features on profile-sized edges."""
    spec = ModelConfig.model_validate(wide_model(22, 8)).spec("m")
    rng = np.random.default_rng(1)
    features = tuple(
        dataclasses.replace(f, edges=tuple(np.sort(rng.normal(size=589)).tolist()))
        if f.kind is FeatureKind.NUMERICAL
        else f
        for f in spec.features
    )
    return dataclasses.replace(spec, features=features)


def batch(spec: ModelSpec, n: int, rng: random.Random) -> WindowBatch:
    columns: dict[str, Any] = {}
    for f in spec.features:
        if f.kind is FeatureKind.NUMERICAL:
            columns[f.name] = np.array([rng.gauss(0.0, 1.0) for _ in range(n)])
        else:
            columns[f.name] = [rng.choice("abcdefgh") for _ in range(n)]
    return WindowBatch(n, columns, [rng.random() for _ in range(n)])


def format3_bytes(w: WindowSketch) -> bytes:
    """The row as format 3 stored it: the layout named, every count in 8 bytes."""

    def column(s: ColumnSketch) -> list[Any]:
        if isinstance(s, NumericSketch):
            kept = [s.count, s.nulls, s.total, s.total_sq, s.minimum, s.maximum]
            return ["n", None, *kept, s.hist.astype("<i8").tobytes()]
        return s.to_state()

    state = {
        "v": 3,
        "layout": w.layout,
        "events": w.events,
        "features": [[k, column(s)] for k, s in w.features.items()],
        "prediction": column(w.prediction),
        "sample": w.sample.to_state(),
    }
    return zlib.compress(msgspec.msgpack.encode(state), 1)


def timed(work: Callable[[], object], repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        work()
    return (time.perf_counter() - started) / repeats


def update_time(spec: ModelSpec, b: WindowBatch, repeats: int, small: tuple[int, int]) -> float:
    """One update's time with ``SMALL_BATCH`` and ``SMALL_BLOCK`` set to ``small``."""
    saved = histogram.SMALL_BATCH, histogram.SMALL_BLOCK
    histogram.SMALL_BATCH, histogram.SMALL_BLOCK = small
    try:
        w = WindowSketch.empty(spec)
        return timed(lambda: w.update(b), repeats)
    finally:
        histogram.SMALL_BATCH, histogram.SMALL_BLOCK = saved


def measure(spec: ModelSpec, n: int, rounds: int, repeats: int) -> dict[str, float]:
    rng = random.Random(n)
    b = batch(spec, n, rng)
    row = WindowSketch.empty(spec)
    for _ in range(BATCHES_PER_ROW):
        row.update(batch(spec, n, rng))
    edges = row.layout_edges()
    old, new = format3_bytes(row), row.to_bytes(edges=False)
    assert WindowSketch.from_bytes(old, lambda _: edges) == WindowSketch.from_bytes(
        new, lambda _: edges
    )
    samples: dict[str, list[float]] = {k: [] for k in ("u0", "u1", "e0", "e1", "d0", "d1")}
    for _ in range(rounds):
        samples["u0"].append(update_time(spec, b, repeats, (0, 0)))
        samples["u1"].append(
            update_time(spec, b, repeats, (histogram.SMALL_BATCH, histogram.SMALL_BLOCK))
        )
        samples["e0"].append(timed(lambda: format3_bytes(row), repeats))
        samples["e1"].append(timed(lambda: row.to_bytes(edges=False), repeats))
        samples["d0"].append(timed(lambda: WindowSketch.from_bytes(old, lambda _: edges), repeats))
        samples["d1"].append(timed(lambda: WindowSketch.from_bytes(new, lambda _: edges), repeats))
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(
        f"{n} events/batch: update {med['u0'] * 1e6:.0f} -> {med['u1'] * 1e6:.0f} us; "
        f"row of {row.events} events: to_bytes {med['e0'] * 1e3:.3f} -> {med['e1'] * 1e3:.3f} ms, "
        f"from_bytes {med['d0'] * 1e3:.3f} -> {med['d1'] * 1e3:.3f} ms, "
        f"{len(old)} -> {len(new)} bytes",
        flush=True,
    )
    return {
        "update": med["u1"] / med["u0"],
        "to_bytes": med["e1"] / med["e0"],
        "from_bytes": med["d1"] / med["d0"],
        "bytes": len(new) / len(old),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 repeats")
    args = parser.parse_args()
    rounds, repeats = (2, 3) if args.quick else (args.rounds, args.repeats)
    spec = scale_spec()
    parts = []
    for n in SIZES:
        r = measure(spec, n, rounds, repeats)
        parts.append(
            f"{n} events/batch: update {r['update']:.2f} of numpy, to_bytes {r['to_bytes']:.2f} "
            f"of format 3, from_bytes {r['from_bytes']:.2f}, bytes {r['bytes']:.2f}"
        )
    print("sketch_rows: " + "; ".join(parts))


if __name__ == "__main__":
    main()
