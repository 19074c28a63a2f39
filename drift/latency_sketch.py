"""A mergeable sketch of one window's ``latency_ms`` values: fixed log-spaced buckets.

Bucket 0 holds [0, ``FLOOR_MS``]; bucket ``i >= 1`` holds
(``FLOOR_MS * GAMMA**(i-1)``, ``FLOOR_MS * GAMMA**i``], up to ``MAX_LATENCY_MS``,
with ``GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)``. Every value in bucket
``i >= 1`` is within ``RELATIVE_ERROR`` (1 %) of the bucket's representative,
``2 * upper / (GAMMA + 1)``, so any order statistic, and any sample percentile
interpolated between two of them, is read back within 1 % of its exact value
(below ``FLOOR_MS``, one microsecond, within that absolute amount: the bucket reads
as 0). The buckets are the same for every window, so merging adds counts and
``merge(A, B)`` equals the sketch of A and B fed in sequence, exactly, whatever the
partitioning or flush boundaries.

The layout is :data:`BUCKETS` counts (1,102); stored, only the non-empty ones are
kept (a delta-coded index and a count each, zlib-compressed), which for a window of
a served model is a few hundred bytes (296 for 10,000 gamma-distributed latencies
over 266 buckets, pinned by a test); the bound is 1,102 buckets whatever the
window's size.

>>> a, b = LatencySketch(), LatencySketch()
>>> a.update([1.0, 2.0, None]); b.update([4.0])
>>> a.merge(b)
>>> a.count, abs(a.quantile(0.5) / 2.0 - 1.0) <= RELATIVE_ERROR
(3, True)
>>> LatencySketch.from_bytes(a.to_bytes()) == a
True
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from drift.errors import SketchCorrupt

__all__ = ["BUCKETS", "FLOOR_MS", "GAMMA", "MAX_LATENCY_MS", "RELATIVE_ERROR", "LatencySketch"]

RELATIVE_ERROR = 0.01
GAMMA = (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
FLOOR_MS = 0.001
# The longest latency an event may carry: an hour. The decoder refuses more.
MAX_LATENCY_MS = 3_600_000.0
_LOG_GAMMA = math.log(GAMMA)
BUCKETS = math.ceil(math.log(MAX_LATENCY_MS / FLOOR_MS) / _LOG_GAMMA) + 1
_FORMAT_VERSION = 1
# Upper edge of every bucket; bucket 0's is the floor itself.
_UPPER = FLOOR_MS * GAMMA ** np.arange(BUCKETS, dtype=np.float64)
_LOWER = np.concatenate([[0.0], _UPPER[:-1]])
_VALUE = np.concatenate([[0.0], 2.0 * _UPPER[1:] / (GAMMA + 1.0)])


class LatencySketch:
    """Counts of latencies in fixed log-spaced buckets (module docstring).

    ``update`` skips missing values (None or NaN: an event without a latency) and
    refuses what the decoder would have refused (negative, infinite, above
    :data:`MAX_LATENCY_MS`) with ValueError.
    """

    __slots__ = ("counts",)

    def __init__(self, counts: np.ndarray | None = None) -> None:
        if counts is None:
            counts = np.zeros(BUCKETS, dtype=np.int64)
        if counts.shape != (BUCKETS,):
            raise ValueError(f"expected {BUCKETS} bucket counts, got shape {counts.shape}")
        self.counts = counts

    @classmethod
    def of(cls, values: Sequence[Any] | np.ndarray) -> LatencySketch:
        """A sketch of ``values``."""
        sketch = cls()
        sketch.update(values)
        return sketch

    @property
    def count(self) -> int:
        return int(self.counts.sum())

    def update(self, values: Sequence[Any] | np.ndarray) -> None:
        arr = np.asarray(values, dtype=np.float64).ravel()
        arr = arr[~np.isnan(arr)]
        if arr.size == 0:
            return
        if not (arr.min() >= 0.0 and arr.max() <= MAX_LATENCY_MS):
            bad = arr[(arr < 0.0) | (arr > MAX_LATENCY_MS)][0]
            raise ValueError(f"latency_ms must be in [0, {MAX_LATENCY_MS:g}], got {bad}")
        idx = np.zeros(arr.size, dtype=np.int64)
        above = arr > FLOOR_MS
        idx[above] = np.ceil(np.log(arr[above] / FLOOR_MS) / _LOG_GAMMA)
        # The logarithm may land an ulp across an edge; the bucket bounds still hold
        # within the relative error, and the clip keeps the cap in the last bucket.
        np.clip(idx, 0, BUCKETS - 1, out=idx)
        self.counts += np.bincount(idx, minlength=BUCKETS)

    def merge(self, other: LatencySketch) -> None:
        self.counts += other.counts

    def _bucket(self, ranks: np.ndarray) -> np.ndarray:
        """The bucket of each 1-based rank in the sorted values (ranks in 1..count)."""
        return np.searchsorted(np.cumsum(self.counts), ranks, side="left")

    def order_statistic(self, rank: int) -> float:
        """The ``rank``-th smallest value (1-based), within the relative error."""
        self._check_rank(rank)
        return float(_VALUE[self._bucket(np.array([rank]))[0]])

    def order_statistic_bounds(self, rank: int) -> tuple[float, float]:
        """Bounds the exact ``rank``-th smallest value lies within: its bucket's edges."""
        self._check_rank(rank)
        b = int(self._bucket(np.array([rank]))[0])
        return float(_LOWER[b]), float(_UPPER[b])

    def _check_rank(self, rank: int) -> None:
        if not 1 <= rank <= self.count:
            raise ValueError(f"rank must be in 1..{self.count}, got {rank}")

    def quantile(self, q: float) -> float:
        """The ``q`` sample quantile as :func:`numpy.quantile` interpolates it (linear),
        from the order statistics' representatives: within the relative error."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        n = self.count
        if n == 0:
            raise ValueError("quantile of an empty sketch")
        h = (n - 1) * q
        lo = math.floor(h)
        below, above = _VALUE[self._bucket(np.array([lo + 1, min(lo + 2, n)]))]
        return float(below + (h - lo) * (above - below))

    def to_bytes(self) -> bytes:
        (nonzero,) = np.nonzero(self.counts)
        # Delta-coded indexes are mostly 1: small msgpack integers, one byte each.
        steps = np.diff(nonzero, prepend=0).tolist()
        state = [_FORMAT_VERSION, steps, self.counts[nonzero].tolist()]
        return zlib.compress(msgspec.msgpack.encode(state), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> LatencySketch:
        try:
            version, steps, counts = msgspec.msgpack.decode(zlib.decompress(data))
            if version != _FORMAT_VERSION:
                raise SketchCorrupt(f"unsupported latency sketch format {version!r}")
            idx = np.cumsum(np.asarray(steps, dtype=np.int64))
            values = np.asarray(counts, dtype=np.int64)
            if idx.shape != values.shape or ((idx < 0) | (idx >= BUCKETS)).any():
                raise SketchCorrupt("latency sketch buckets out of range")
            out = np.zeros(BUCKETS, dtype=np.int64)
            out[idx] = values
            return cls(out)
        except (zlib.error, msgspec.DecodeError, TypeError, ValueError, OverflowError) as exc:
            raise SketchCorrupt(f"cannot decode latency sketch: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencySketch):
            return NotImplemented
        return bool(np.array_equal(self.counts, other.counts))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LatencySketch(count={self.count})"
