"""Bin edges for a reference profile's numerical features.

Continuous features get sample quantiles in the body and the data's exact
order statistics in the tails; discrete ones (at most 20 distinct values, the
limit up to which Evidently compares numerical columns value by value) get one
bucket per value. Values that hold at least a body bucket's share of the
sample (the zeros of a zero-inflated amount, the small numbers of a count) get
a bucket ``[v, next float)`` of their own in continuous features too, and the
body quantiles are taken over the other values: spread across a wide bucket, a
point mass is what the binned Wasserstein distance gets most wrong. Either way
the edges are finite and strictly increasing, so
:class:`drift.schema.FeatureSpec` accepts them.

>>> x = np.random.default_rng(0).normal(size=10_000)
>>> edges, values = numeric_edges(x, np.sort(x[:2000]), bins=100, std=1.0)
>>> values is None, bool(np.all(np.diff(edges) > 0)), x.min() in edges, x.max() in edges
(True, True, True, True)
>>> edges, values = numeric_edges(np.array([1.0, 2.0, 2.0]), np.array([1.0, 2.0, 2.0]), 100, 0.5)
>>> values.tolist(), bool(edges[0] == 1.0 and edges[2] == 2.0)
([1.0, 2.0], True)
>>> spend = np.where(np.arange(10_000) % 3 == 0, 0.0, 50.0 + x ** 2)
>>> edges, _ = numeric_edges(spend, np.sort(spend[:2000]), bins=100, std=30.0)
>>> at = int(np.searchsorted(edges, 0.0))
>>> bool(edges[at] == 0.0 and edges[at + 1] == np.nextafter(0.0, 1.0))
True
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DISCRETE_LIMIT = 20
# Beyond these sample quantiles, edges come from the data's exact extremes.
TAIL_SHARE = 0.01
_GEOMETRIC = np.linspace(0.0, 1.0, 30)
# Edges past the reference's extremes, in reference standard deviations.
OUTER_STEPS = np.array(
    [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32]
)


def numeric_edges(
    x: FloatArray, sample: FloatArray, bins: int, std: float
) -> tuple[FloatArray, FloatArray | None]:
    """Edges for finite values ``x`` given a sorted ``sample`` of them.

    Also returns the distinct values when there are at most :data:`DISCRETE_LIMIT`.
    """
    values = discrete_values(x, sample)
    if values is not None:
        return discrete_edges(values), values
    heavy = heavy_values(sample, bins)
    edges = quantile_edges(x, sample, bins, std, heavy)
    if heavy.size:
        edges = sorted_unique(np.sort(np.concatenate((edges, discrete_edges(heavy)))))
    return edges, None


def heavy_values(sample: FloatArray, bins: int) -> FloatArray:
    """Values of the sorted ``sample`` that fill at least one of ``bins`` buckets alone.

    Below that share a point mass adds no more to a bucket than its share of
    continuous values does, so it needs no bucket of its own.
    """
    if sample.size < 2:
        return sample[:0]
    starts = np.flatnonzero(np.concatenate(([True], sample[1:] != sample[:-1])))
    runs = np.diff(np.append(starts, sample.size))
    heavy: FloatArray = sample[starts[runs >= max(2, -(-sample.size // bins))]]
    return heavy


def discrete_values(x: FloatArray, sample: FloatArray) -> FloatArray | None:
    distinct = sorted_unique(sample)
    if distinct.size > DISCRETE_LIMIT or distinct.size == 0:
        return None
    if sample.size == x.size or bool(np.isin(x, distinct).all()):
        return distinct
    # The sample missed some values; only a full pass can tell how many.
    full = np.unique(x)
    return full if full.size <= DISCRETE_LIMIT else None


def sorted_unique(s: FloatArray) -> FloatArray:
    if s.size == 0:
        return s
    return s[np.concatenate(([True], s[1:] != s[:-1]))]


def discrete_edges(values: FloatArray) -> FloatArray:
    # Each value v gets the bucket [v, next float after v), so its count is exact
    # and anything between two reference values lands in a bucket of its own. The
    # float after the largest is infinite: the overflow bucket holds that value alone.
    with np.errstate(over="ignore"):
        after = np.nextafter(values, np.inf)
    edges = sorted_unique(np.sort(np.concatenate((values, after))))
    finite: FloatArray = edges[np.isfinite(edges)]
    if finite.size == 1:  # the largest float alone: an empty bucket below it keeps two edges
        finite = np.concatenate((np.nextafter(finite, -np.inf), finite))
    return finite


def quantile_edges(
    x: FloatArray, sample: FloatArray, bins: int, std: float, heavy: FloatArray | None = None
) -> FloatArray:
    """Sample quantiles in the body, exact order statistics of ``x`` in the tails.

    A sample cannot place the extreme values, and spreading a wide bucket's mass
    uniformly is what the binned Wasserstein distance gets most wrong; so beyond
    the sample's 1% quantiles the edges are the data's own extremes, at ranks
    that grow geometrically from the minimum and maximum, and further edges
    reach out past them (up to 32 standard deviations) for windows that stray
    outside the reference's range. The body quantiles leave out the ``heavy``
    values, which get buckets of their own, so the rest keeps ``bins`` buckets.
    """
    if sample.size == 0:
        return np.array([0.0, 1.0])
    distinct = sorted_unique(sample)
    if distinct.size <= bins + 1 and sample.size == x.size:
        return distinct if distinct.size >= 2 else discrete_edges(distinct)
    rest = sample if heavy is None or heavy.size == 0 else sample[~np.isin(sample, heavy)]
    body = _interpolated_quantiles(rest if rest.size else sample, np.linspace(0.0, 1.0, bins + 1))
    lo, hi = _interpolated_quantiles(sample, np.array([TAIL_SHARE, 1.0 - TAIL_SHARE]))
    step = max(1, round(x.size / bins))
    # The tails hold the data's minimum and maximum, so edges reach out from them.
    lower = np.sort(x[x < lo])
    upper = np.sort(x[x > hi])
    reach = std * OUTER_STEPS
    parts = (
        min(lower[0] if lower.size else lo, lo) - reach,
        lower[_tail_ranks(lower.size, step) - 1],
        body[(body >= lo) & (body <= hi)],
        upper[upper.size - _tail_ranks(upper.size, step)],
        max(upper[-1] if upper.size else hi, hi) + reach,
    )
    edges: FloatArray = np.unique(np.concatenate(parts))
    return edges[np.isfinite(edges)]


def _interpolated_quantiles(ordered: FloatArray, levels: FloatArray) -> FloatArray:
    pos = levels * (ordered.size - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, ordered.size - 1)
    # Interpolation may step back by an ulp; quantiles must not decrease.
    return np.maximum.accumulate(ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo]))


def _tail_ranks(m: int, step: int) -> npt.NDArray[np.intp]:
    """Ranks 1..m counted from the extreme: geometric near it, every ``step`` further in."""
    if m == 0:
        return np.zeros(0, dtype=np.intp)
    geometric = np.rint(np.power(float(m), _GEOMETRIC)).astype(np.intp)
    return np.unique(np.concatenate((geometric, np.arange(1, m + 1, step))))
