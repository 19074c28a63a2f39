"""The regression sketch and its metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from drift.errors import SketchCorrupt, SketchMismatch
from drift.performance.base import (
    DECODE_ERRORS,
    DEFAULT_ERROR_EDGES,
    IntArray,
    PerformanceMetrics,
    Task,
    counts,
    ratio,
)


@dataclass(eq=False)
class RegressionSketch:
    """Error moments and a fixed-edge histogram of ``error = predicted - actual``.

    Pairs where either side is None, NaN or infinite are only counted in
    ``missing``. ``sum_ape`` and ``ape_count`` cover the events with a nonzero
    actual, the only ones a percentage error exists for. ``sum_sq_sq_err`` (the
    sum of squared errors, squared) gives the variance of the squared error
    that :func:`drift.stats.degradation.error_increase` needs. ``hist`` follows
    :class:`drift.sketch.NumericSketch`: ``len(edges) + 1`` buckets.
    """

    edges: tuple[float, ...] = DEFAULT_ERROR_EDGES
    count: int = 0
    missing: int = 0
    sum_err: float = 0.0
    sum_sq_err: float = 0.0
    sum_abs_err: float = 0.0
    sum_sq_sq_err: float = 0.0
    sum_ape: float = 0.0
    ape_count: int = 0
    hist: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        self.edges = tuple(float(e) for e in self.edges)
        arr = np.asarray(self.edges)
        if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0):
            raise ValueError("edges must be finite and strictly increasing")
        if self.hist.size == 0:
            self.hist = np.zeros(len(self.edges) + 1, dtype=np.int64)

    def update(self, actual: Sequence[float | None], predicted: Sequence[float | None]) -> None:
        if len(predicted) != len(actual):
            raise ValueError("actual and predicted must have the same length")
        act = np.array(actual, dtype=np.float64)
        pred = np.array(predicted, dtype=np.float64)
        ok = np.isfinite(act) & np.isfinite(pred)
        act, err = act[ok], pred[ok] - act[ok]
        self.missing += len(actual) - int(ok.sum())
        if err.size == 0:
            return
        sq = err * err
        self.count += int(err.size)
        self.sum_err += float(err.sum())
        self.sum_sq_err += float(sq.sum())
        self.sum_abs_err += float(np.abs(err).sum())
        self.sum_sq_sq_err += float(np.dot(sq, sq))
        nonzero = act != 0
        # Near-zero actuals can push a percentage error past the float range; inf is
        # then the honest MAPE, so the overflow is not worth a warning.
        with np.errstate(over="ignore"):
            self.sum_ape += float((np.abs(err[nonzero]) / np.abs(act[nonzero])).sum())
        self.ape_count += int(nonzero.sum())
        idx = np.searchsorted(np.asarray(self.edges), err, side="right")
        self.hist += np.bincount(idx, minlength=self.hist.size)

    def merge(self, other: RegressionSketch) -> None:
        """Add ``other`` in; raises SketchMismatch, changing nothing, if incompatible."""
        if other.edges != self.edges:
            raise SketchMismatch("regression sketches have different error edges")
        self.count += other.count
        self.missing += other.missing
        self.sum_err += other.sum_err
        self.sum_sq_err += other.sum_sq_err
        self.sum_abs_err += other.sum_abs_err
        self.sum_sq_sq_err += other.sum_sq_sq_err
        self.sum_ape += other.sum_ape
        self.ape_count += other.ape_count
        self.hist += other.hist

    @property
    def mse(self) -> float | None:
        return self.sum_sq_err / self.count if self.count else None

    @property
    def squared_error_variance(self) -> float | None:
        """Sample variance (n - 1) of the squared errors; None below two events."""
        if self.count < 2:
            return None
        centred = self.sum_sq_sq_err - self.sum_sq_err * self.sum_sq_err / self.count
        return max(centred / (self.count - 1), 0.0)

    def metrics(self) -> PerformanceMetrics:
        return PerformanceMetrics(
            task=Task.REGRESSION,
            n=self.count,
            rmse=rmse(self),
            mae=mae(self),
            mape=mape(self),
            mean_error=self.sum_err / self.count if self.count else None,
        )

    def to_state(self) -> list[Any]:
        """Plain lists, numbers and strings: safe for JSON and msgpack alike."""
        return [
            "reg",
            list(self.edges),
            self.count,
            self.missing,
            self.sum_err,
            self.sum_sq_err,
            self.sum_abs_err,
            self.sum_sq_sq_err,
            self.sum_ape,
            self.ape_count,
            self.hist.tolist(),
        ]

    @classmethod
    def from_state(cls, state: list[Any]) -> RegressionSketch:
        try:
            tag, edges, count, missing, *sums, ape_count, hist = state
            if tag != "reg" or len(sums) != 5:
                raise ValueError("not a regression sketch state")
            counts([count, missing, ape_count], 3)
            sum_err, sum_sq, sum_abs, sum_sq_sq, sum_ape = (float(s) for s in sums)
            sketch = cls(tuple(edges), count, missing, sum_err, sum_sq, sum_abs, sum_sq_sq)
            sketch.sum_ape, sketch.ape_count = sum_ape, ape_count
            sketch.hist = counts(hist, len(sketch.edges) + 1)
        except DECODE_ERRORS as exc:
            raise SketchCorrupt(f"cannot decode regression sketch: {exc}") from exc
        return sketch

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegressionSketch):
            return NotImplemented
        return self.to_state() == other.to_state()


def rmse(sketch: RegressionSketch) -> float | None:
    mse = sketch.mse
    return None if mse is None else math.sqrt(mse)


def mae(sketch: RegressionSketch) -> float | None:
    return ratio(sketch.sum_abs_err, sketch.count)


def mape(sketch: RegressionSketch) -> float | None:
    """Mean ``|error| / |actual|`` over nonzero actuals, as a fraction (0.1 is 10 %)."""
    return ratio(sketch.sum_ape, sketch.ape_count)
