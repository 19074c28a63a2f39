"""The latency sketch: exact merges, lossless bytes, percentiles within 1 %."""

from __future__ import annotations

import math
import zlib

import msgspec
import numpy as np
import pytest

from drift.errors import SketchCorrupt
from drift.latency_sketch import (
    BUCKETS,
    FLOOR_MS,
    MAX_LATENCY_MS,
    RELATIVE_ERROR,
    LatencySketch,
)


def test_merging_parts_equals_feeding_the_union() -> None:
    rng = np.random.default_rng(3)
    values = rng.lognormal(1.0, 1.2, 5000)
    parts = np.array_split(values, 7)
    merged = LatencySketch()
    for part in parts:
        merged.merge(LatencySketch.of(part))
    assert merged == LatencySketch.of(values)
    assert merged.count == 5000


def test_bytes_round_trip_and_stay_small() -> None:
    rng = np.random.default_rng(4)
    sketch = LatencySketch.of(rng.gamma(2.0, 2.0, 10_000))
    raw = sketch.to_bytes()
    assert LatencySketch.from_bytes(raw) == sketch
    # A served model's window: a few hundred bytes (measured 296).
    assert len(raw) < 500
    assert LatencySketch.from_bytes(LatencySketch().to_bytes()).count == 0


@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_percentiles_are_within_the_relative_error(q: float) -> None:
    rng = np.random.default_rng(5)
    for values in (
        rng.lognormal(2.0, 1.5, 3001),
        rng.exponential(0.5, 777) + 0.01,
        np.arange(1.0, 21.0),
    ):
        estimate = LatencySketch.of(values).quantile(q)
        exact = float(np.quantile(values, q))
        assert abs(estimate / exact - 1.0) <= RELATIVE_ERROR + 1e-12


def test_order_statistics_lie_within_their_bounds() -> None:
    rng = np.random.default_rng(6)
    values = np.sort(rng.lognormal(0.0, 2.0, 400))
    sketch = LatencySketch.of(values)
    for rank in range(1, 401):
        lower, upper = sketch.order_statistic_bounds(rank)
        assert lower <= values[rank - 1] <= upper
        assert upper <= lower * (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR) + 1e-12
    with pytest.raises(ValueError, match=r"rank must be in 1\.\.400, got 0"):
        sketch.order_statistic(0)


def test_missing_values_are_skipped_and_bad_ones_refused() -> None:
    sketch = LatencySketch.of([None, math.nan, 0.0, FLOOR_MS / 2, MAX_LATENCY_MS])
    assert sketch.count == 3
    assert sketch.counts[0] == 2 and sketch.counts[BUCKETS - 1] == 1
    assert sketch.quantile(0.0) == 0.0
    assert abs(sketch.quantile(1.0) / MAX_LATENCY_MS - 1.0) <= RELATIVE_ERROR
    for bad in (-1.0, math.inf, MAX_LATENCY_MS * 1.001):
        with pytest.raises(ValueError, match="latency_ms must be in"):
            LatencySketch.of([1.0, bad])
    with pytest.raises(ValueError, match="quantile of an empty sketch"):
        LatencySketch().quantile(0.5)


def test_corrupt_bytes_raise_sketch_corrupt() -> None:
    for raw in (
        b"not zlib",
        zlib.compress(b"\x01"),
        zlib.compress(msgspec.msgpack.encode([2, [], []])),
        zlib.compress(msgspec.msgpack.encode([1, [BUCKETS], [1]])),
        zlib.compress(msgspec.msgpack.encode([1, [3, -5], [1, 1]])),
        zlib.compress(msgspec.msgpack.encode([1, [1, 2], [1]])),
    ):
        with pytest.raises(SketchCorrupt):
            LatencySketch.from_bytes(raw)
