"""Compiled loops: histograms on fixed, uneven edges, and the binned Wasserstein distance.

Imported lazily, by the processes that bin raw columns (profile builds,
``drift.evaluate`` on frames) or compare sketches: numba takes about half a
second to import, and compiling these takes a few seconds the first time
(afterwards numba's on-disk cache, which is numba's own I/O, serves them).

The kernels hold no Python objects and run without the GIL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
from numba.typed import List as TypedList

_F = TypeVar("_F", bound=Callable[..., Any])


def _compiled(fn: _F) -> _F:
    """Compile ``fn`` on its first call; the compiled code releases the GIL.

    The machine code is cached beside the source (or in ``NUMBA_CACHE_DIR``) when
    that is writable; on a read-only file system every process compiles anew.
    """
    try:
        return cast(_F, numba.njit(nogil=True, cache=True)(fn))
    except RuntimeError:  # numba found no writable cache location
        return cast(_F, numba.njit(nogil=True)(fn))


@_compiled
def _bucket_counts(
    x: Any, lo: float, scale: float, cells: int, before: Any, padded: Any, hist: Any
) -> None:
    """Add the bucket of each value to ``hist``; see :class:`drift.binning.EdgeIndex`.

    ``cells == 0`` means no grid: every value takes a binary search.
    """
    edges = padded[:-1]
    top = float(cells)
    for i in range(x.size):
        v = x[i]
        u = (v - lo) * scale
        if u >= 0.0 and u < top:  # false for NaN too
            idx = before[int(u)]
            # The table counts only edges in earlier cells, all at or below v; the walk
            # steps past the rest of v's cell and ends at the +inf pad at the latest.
            while v >= padded[idx]:
                idx += 1
        else:
            # Outside the grid's span (or no grid): the table cannot place the value.
            idx = np.searchsorted(edges, v, side="right")
        hist[idx] += 1


@_compiled
def _batch(
    values: Any, grid: Any, lo: Any, scale: Any, cells: Any, tables: Any, padded: Any, hists: Any
) -> None:
    for j in range(len(values)):
        g = grid[j]
        _bucket_counts(values[j], lo[g], scale[g], cells[g], tables[g], padded[g], hists[j])


def run_batch(
    values: list[np.ndarray[Any, Any]],
    grid: np.ndarray[Any, Any],
    lo: np.ndarray[Any, Any],
    scale: np.ndarray[Any, Any],
    cells: np.ndarray[Any, Any],
    tables: list[np.ndarray[Any, Any]],
    padded: list[np.ndarray[Any, Any]],
    hists: list[np.ndarray[Any, Any]],
) -> None:
    """Fill ``hists[j]`` with the bucket counts of ``values[j]`` on grid ``grid[j]``.

    Grid ``g`` is ``(lo[g], scale[g], cells[g], tables[g], padded[g])``, its
    padded edges ending in +inf; the lists are turned into typed lists here.
    """
    _batch(
        TypedList(values),
        grid,
        lo,
        scale,
        cells,
        TypedList(tables),
        TypedList(padded),
        TypedList(hists),
    )


@_compiled
def _cdf_knots(edges: Any, hist: Any, lo: float, hi: float) -> tuple[Any, Any, Any]:
    """Knots of a histogram's CDF, linear inside buckets clipped to ``[lo, hi]``.

    Returns strictly increasing ``x`` with the CDF just below (``below``) and at
    (``upto``) each knot; they differ where several knots coincide, a point mass.
    """
    n = edges.size + 2
    xs = np.empty(n)
    cdf = np.empty(n)
    total = hist.sum()
    xs[0] = lo
    cdf[0] = 0.0
    running = 0.0
    for i in range(edges.size):
        xs[i + 1] = min(max(edges[i], lo), hi)
        running += hist[i]
        cdf[i + 1] = running / total
    xs[n - 1] = hi
    cdf[n - 1] = 1.0
    x = np.empty(n)
    below = np.empty(n)
    upto = np.empty(n)
    m = 0
    for i in range(n):
        if i == 0 or xs[i] != xs[i - 1]:
            x[m] = xs[i]
            below[m] = cdf[i]
            m += 1
        upto[m - 1] = cdf[i]
    return x[:m], below[:m], upto[:m]


@_compiled
def _cdf_limits(x: Any, below: Any, upto: Any, t: float) -> tuple[float, float]:
    """The CDF just below ``t`` and at ``t``."""
    last = x.size - 1
    if t > x[last]:
        return 1.0, 1.0
    k = np.searchsorted(x, t, side="right") - 1
    if k < 0:
        return 0.0, 0.0
    if x[k] == t:
        return below[k], upto[k]
    nxt = min(k + 1, last)
    span = x[nxt] - x[k]
    frac = (t - x[k]) / (span if span > 0 else 1.0)
    between = upto[k] + frac * (below[nxt] - upto[k])
    return between, between


@_compiled
def _wasserstein_binned(
    edges: Any,
    ref_hist: Any,
    cur_hist: Any,
    ref_lo: float,
    ref_hi: float,
    cur_lo: float,
    cur_hi: float,
) -> float:
    """Integral of |F_ref - F_cur| over the union of both CDFs' knots.

    Between two neighbouring knots both CDFs are linear, so the gap is too; where
    it changes sign inside a segment, its two triangles are integrated apart.
    """
    rx, rb, ru = _cdf_knots(edges, ref_hist, ref_lo, ref_hi)
    cx, cb, cu = _cdf_knots(edges, cur_hist, cur_lo, cur_hi)
    area = 0.0
    i = j = 0
    previous = 0.0
    right_gap = 0.0
    first = True
    while i < rx.size or j < cx.size:
        # The next knot of the union, in increasing order.
        t = rx[i] if j >= cx.size or (i < rx.size and rx[i] <= cx[j]) else cx[j]
        while i < rx.size and rx[i] == t:
            i += 1
        while j < cx.size and cx[j] == t:
            j += 1
        ref_left, ref_right = _cdf_limits(rx, rb, ru, t)
        cur_left, cur_right = _cdf_limits(cx, cb, cu, t)
        if not first:
            left_gap = ref_left - cur_left
            a, b = abs(right_gap), abs(left_gap)
            width = t - previous
            if right_gap * left_gap >= 0:
                area += width * (a + b) / 2
            else:
                area += width * (a * a + b * b) / (2 * (a + b))
        first = False
        previous = t
        right_gap = ref_right - cur_right
    return area


def wasserstein_binned(
    edges: np.ndarray[Any, Any],
    ref_hist: np.ndarray[Any, Any],
    cur_hist: np.ndarray[Any, Any],
    ref_extent: tuple[float, float],
    cur_extent: tuple[float, float],
) -> float:
    """Unnormed binned W1; see :func:`drift.stats.numerical.wasserstein_binned`."""
    return float(_wasserstein_binned(edges, ref_hist, cur_hist, *ref_extent, *cur_extent))


@_compiled
def _cdf_below(edges: Any, hist: Any, lo: float, hi: float, t: Any) -> Any:
    x, below, upto = _cdf_knots(edges, hist, lo, hi)
    out = np.empty(t.size)
    for i in range(t.size):
        out[i] = _cdf_limits(x, below, upto, t[i])[0]
    return out


def cdf_below(
    edges: np.ndarray[Any, Any],
    hist: np.ndarray[Any, Any],
    extent: tuple[float, float],
    t: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """The histogram's CDF just below each point of ``t`` (see :func:`_cdf_knots`)."""
    out: np.ndarray[Any, Any] = _cdf_below(edges, hist, *extent, t)
    return out
