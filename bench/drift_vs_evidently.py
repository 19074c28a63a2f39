"""Drift evaluation: driftwatch against Evidently 0.7's DataDriftPreset, same frames, same run.

Builds 100,000 reference and 100,000 current rows of 20 features (16 numerical,
4 categorical; 5 of them shifted), then times raw frames in, report out for
both: Evidently's ``Report([DataDriftPreset()]).run(...)`` and driftwatch's
``evaluate(reference_frame, current_frame)``, which includes profiling the
reference (quantile edges, sketches, samples) and sketching the current
window. Best of N rounds each; agreement is the share of per-feature drift
decisions that are identical. The last line reads
``drift_eval: <speedup>x faster than Evidently, agreement <pct>%``.

Run from the repository root: ``python bench/drift_vs_evidently.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from drift.evaluate import evaluate  # noqa: E402
from tests.harness.evidently import run_evidently  # noqa: E402

CATEGORIES = {
    "channel": (["web", "app", "store", "phone"], [0.5, 0.3, 0.15, 0.05]),
    "country": (["de", "fr", "it", "es", "nl", "pl"], [0.3, 0.25, 0.15, 0.12, 0.1, 0.08]),
    "plan": (["free", "basic", "pro"], [0.6, 0.3, 0.1]),
    "device": (["ios", "android", "desktop"], [0.35, 0.4, 0.25]),
}
# What differs in the current window: 3 numerical and 2 categorical features.
SHIFTED = ("num_00", "num_05", "num_10", "channel", "plan")


def _numerical(rng: np.random.Generator, i: int, n: int, shifted: bool) -> np.ndarray:
    family = i % 4
    if family == 0:
        return rng.normal(0.4 if shifted else 0.0, 1.0, n)
    if family == 1:
        return rng.lognormal(0.0, 1.5 if shifted else 1.0, n)
    if family == 2:
        return rng.uniform(0.0, 12.0 if shifted else 10.0, n)
    mixed = rng.normal(-2.0, 0.5, n)
    return np.where(rng.random(n) < 0.5, mixed, rng.normal(3.0, 1.0, n))


def make_frame(rng: np.random.Generator, n: int, current: bool) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for i in range(16):
        name = f"num_{i:02d}"
        data[name] = _numerical(rng, i, n, current and name in SHIFTED)
    for name, (values, weights) in CATEGORIES.items():
        p = np.array(weights)
        if current and name in SHIFTED:
            p = p[::-1]
        data[name] = rng.choice(values, n, p=p / p.sum())
    return pd.DataFrame(data)


def best_of(rounds: int, fn: Any) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(rounds):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--evidently-rounds", type=int, default=2)
    parser.add_argument("--driftwatch-rounds", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(20240601)
    reference = make_frame(rng, args.rows, current=False)
    current = make_frame(rng, args.rows, current=True)
    print(f"{args.rows:,} reference and {args.rows:,} current rows, {reference.shape[1]} features")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev_seconds, theirs = best_of(
            args.evidently_rounds, lambda: run_evidently(reference, current)
        )
    ev_columns, ev_dataset = theirs.drifted, theirs.dataset_drift
    print(f"evidently:  {ev_seconds:8.3f} s (best of {args.evidently_rounds})", flush=True)
    dw_seconds, report = best_of(args.driftwatch_rounds, lambda: evaluate(reference, current))
    print(f"driftwatch: {dw_seconds:8.3f} s (best of {args.driftwatch_rounds})", flush=True)

    same = 0
    for f in report.features:
        theirs = ev_columns.get(f.name)
        same += theirs == f.drifted
        mark = "" if theirs == f.drifted else "   <-- differs"
        score = f"{f.score:8.4f}" if f.score is not None else "       -"
        print(
            f"  {f.name:8s} {f.method!s:13s} {score} ours={f.drifted!s:5s} evidently={theirs}{mark}"
        )
    agreement = 100.0 * same / len(report.features)
    speedup = ev_seconds / dw_seconds
    print(f"dataset drift: driftwatch {report.dataset_drift}, evidently {ev_dataset}")
    print(f"drift_eval: {speedup:.1f}x faster than Evidently, agreement {agreement:.1f}%")


if __name__ == "__main__":
    main()
