"""Fast histograms on fixed, uneven bin edges.

A binary search costs about 55 ns per value for 500 edges, which would dominate
building a reference profile or a window sketch from large columns.
:class:`EdgeIndex` answers the same question through a uniform grid of cells:
the cell of a value is one multiply, a table gives the number of edges in
earlier cells, and a comparison or two with the next edges finishes the job.
Because ``x -> (x - lo) * scale`` is monotone under floating-point rounding, an
edge in an earlier cell is never above the value and an edge in a later cell
never at or below it, so the result equals ``searchsorted(..., side="right")``
exactly, whatever the rounding. The loop itself is compiled
(:mod:`drift.kernels`); small columns take numpy's binary search instead.

:class:`HistogramBatch` gathers the histograms of many columns into one
compiled call that runs without the GIL, on a worker thread if asked, so the
caller can count categories (which needs the GIL) meanwhile.

>>> edges = np.array([0.0, 1.0, 2.5, 10.0])
>>> values = np.array([-3.0, 0.0, 0.5, 1.0, 2.5, 9.99, 10.0, 1e9] * 4096)
>>> index = EdgeIndex(edges, cells=8)
>>> histogram(edges, values, index).tolist()
[4096, 8192, 4096, 8192, 8192]
>>> bool((histogram(edges, values, index) == histogram(edges, values)).all())
True
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_CELLS = 1 << 16
# Below this many values the tables and the compiled call cost more than they save.
MIN_VALUES_FOR_GRID = 16_384
# Share of values in cells with several edges above which the grid stops paying
# off (heavy-tailed data squeezes most edges into a few cells).
MAX_CROWDED_SHARE = 0.25
# Most edges that :func:`thinned` may drop.
MAX_THINNED_SHARE = 0.02


class EdgeIndex:
    """The grid tables that place values against sorted, finite, increasing edges.

    ``table[c]`` is the number of edges in cells before ``c`` (edges below the
    span included), so every edge it counts is at or below any value in cell
    ``c``; the kernel steps past the remaining edges of the value's cell. Values
    outside the span (or NaN) take a binary search.
    """

    def __init__(
        self,
        edges: FloatArray,
        cells: int = DEFAULT_CELLS,
        span: tuple[float, float] | None = None,
    ) -> None:
        """``span`` limits the grid to where most values are (default: the edges' range)."""
        self.edges = np.ascontiguousarray(edges, dtype=np.float64)
        if span is None:
            span = (float(self.edges[0]), float(self.edges[-1])) if self.edges.size else (0.0, 0.0)
        lo, hi = span
        scale = _grid_scale(cells, lo, hi)
        # Without a grid (no cells, fewer than two edges, a span too narrow or too wide for
        # one) every value is binary-searched.
        self.usable = scale is not None and self.edges.size >= 2
        self.lo, self.scale, self.cells = lo, 0.0, 0
        self.table = np.zeros(1, np.int32)
        self._crowded = np.zeros(1, dtype=bool)
        if scale is None or not self.usable:
            return
        self.scale = scale
        self.cells = cells
        below = int(np.searchsorted(self.edges, lo, side="left"))
        inner = self.edges[below : int(np.searchsorted(self.edges, hi, side="right"))]
        # Edges exactly at the span's top fall in cell ``cells``, one past the grid.
        where = _cell(inner, lo, self.scale, cells)
        # A step up after each edge's cell. int32 keeps the table (256 KiB) in cache,
        # which, not arithmetic, bounds the speed.
        steps = np.diff(np.concatenate(([0], where + 1, [cells + 1])))
        self.table = np.repeat(np.arange(below, below + inner.size + 1, dtype=np.int32), steps)
        # A point mass's bucket [v, next float) always shares a cell, but costs values
        # at v one more comparison only: it does not make the cell crowded.
        twin = (where[1:] == where[:-1]) & ~_point_buckets(inner)
        shared = where[1:][twin]
        self._crowded = np.zeros(cells + 1, dtype=bool)
        self._crowded[shared] = True

    def worthwhile(self, sample: FloatArray) -> bool:
        """Whether the grid beats a binary search on data like ``sample``."""
        if not self.usable or sample.size == 0:
            return False
        crowded = float(np.mean(self._crowded[_cell(sample, self.lo, self.scale, self.cells)]))
        return crowded <= MAX_CROWDED_SHARE


def _grid_scale(cells: int, lo: float, hi: float) -> float | None:
    """Cells per unit over ``[lo, hi]``, or None where that span cannot carry a grid."""
    width = hi - lo
    if cells <= 0 or not (np.isfinite(width) and width > 0):
        return None
    scale = cells / width
    return scale if np.isfinite(scale) else None


def _cell(
    x: FloatArray, lo: float, scale: float, cells: int, clip: bool = True
) -> npt.NDArray[np.intp]:
    """Grid cell of each value: 0..cells, where cell ``cells`` holds only the span's top."""
    u = np.subtract(x, lo)
    np.multiply(u, scale, out=u)
    if clip:
        np.clip(u, 0.0, cells, out=u)
    return u.astype(np.intp)


def _point_buckets(edges: FloatArray) -> npt.NDArray[np.bool_]:
    """Whether each edge but the first closes a bucket ``[v, next float after v)``."""
    return np.asarray(edges[1:] == np.nextafter(edges[:-1], np.inf))


def thinned(edges: FloatArray, span: tuple[float, float], cells: int = DEFAULT_CELLS) -> FloatArray:
    """``edges`` without those sharing a grid cell with a lower edge, if few do.

    A cell holding two edges sends every value of the column through a slower
    second pass; edges that close (a few millionths of the range apart) carry
    no information worth that, except the two of a point mass's bucket
    ``[v, next float)``, which always stay. When many edges crowd (heavy
    tails), all stay.

    >>> edges = np.sort(np.append(np.linspace(0.0, 1.0, 101), 0.5000001))
    >>> len(edges), len(thinned(edges, (0.0, 1.0), cells=1000))
    (102, 101)
    """
    lo, hi = span
    scale = _grid_scale(cells, lo, hi)
    if scale is None:
        return edges
    inside = np.flatnonzero((edges >= lo) & (edges <= hi))
    cell = _cell(edges[inside], lo, scale, cells)
    point = np.zeros(edges.size, dtype=bool)
    point[1:] = _point_buckets(edges)
    point[:-1] |= point[1:]
    repeat = inside[1:][(cell[1:] == cell[:-1]) & ~point[inside[1:]]]
    if repeat.size == 0 or repeat.size > MAX_THINNED_SHARE * edges.size:
        return edges
    return np.delete(edges, repeat)


def histogram(edges: FloatArray, x: FloatArray, index: EdgeIndex | None = None) -> IntArray:
    """Counts of finite ``x`` in the ``len(edges) + 1`` buckets of a NumericSketch.

    >>> histogram(np.array([0.0, 1.0]), np.array([-1.0, 0.0, 0.5, 1.0, 7.0])).tolist()
    [1, 2, 2]
    """
    batch = HistogramBatch()
    batch.add(edges, x, index)
    return batch.run()[0]


class HistogramBatch:
    """Histograms of several columns, computed together without the GIL.

    Columns below :data:`MIN_VALUES_FOR_GRID` values are counted by ``add``
    itself; the rest wait for :meth:`run` (this thread) or :meth:`start` (the
    worker thread). Every histogram equals ``bincount(searchsorted(edges, x,
    side="right"))``.
    """

    def __init__(self) -> None:
        self._results: list[IntArray | None] = []
        self._pending: list[tuple[int, FloatArray, FloatArray, EdgeIndex | None]] = []

    def add(self, edges: FloatArray, x: FloatArray, index: EdgeIndex | None = None) -> int:
        """Queue the histogram of finite ``x``; returns its position in the results."""
        slot = len(self._results)
        if x.size < MIN_VALUES_FOR_GRID:
            counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=edges.size + 1)
            self._results.append(counts.astype(np.int64, copy=False))
        else:
            self._results.append(None)
            self._pending.append((slot, edges, np.ascontiguousarray(x, np.float64), index))
        return slot

    def run(self) -> list[IntArray]:
        """Compute what is queued in this thread and return every histogram."""
        self._compute()
        return self._collect()

    def start(self) -> Callable[[], list[IntArray]]:
        """Compute what is queued on the worker thread; the returned call waits for it."""
        if not self._pending:
            return self._collect
        entered = threading.Event()

        def work() -> None:
            entered.set()
            self._compute()

        future: Future[None] = _worker.submit(work)
        # A fresh thread gets the GIL only when this one lets go of it, which a long
        # pandas call in the caller would not do for milliseconds: wait until the
        # worker runs. It keeps the GIL up to the compiled call, which releases it.
        entered.wait()

        def wait() -> list[IntArray]:
            future.result()
            return self._collect()

        return wait

    def _compute(self) -> None:
        if not self._pending:
            return
        from drift import kernels  # numba: imported by the processes that bin columns only

        grids: dict[int, int] = {}  # id of an EdgeIndex -> its position in the lists below
        lo: list[float] = []
        scale: list[float] = []
        cells: list[int] = []
        tables: list[npt.NDArray[np.int32]] = []
        padded: list[FloatArray] = []

        def add_grid(index: EdgeIndex) -> int:
            lo.append(index.lo)
            scale.append(index.scale)
            cells.append(index.cells)
            tables.append(index.table)
            padded.append(np.append(index.edges, np.inf))
            return len(lo) - 1

        grid_of: list[int] = []
        for _, edges, _, index in self._pending:
            if index is None:  # no grid: its cells are 0, so every value is binary-searched
                grid_of.append(add_grid(EdgeIndex(edges, cells=0)))
            else:
                if id(index) not in grids:
                    grids[id(index)] = add_grid(index)
                grid_of.append(grids[id(index)])
        hists = [np.zeros(edges.size + 1, np.int64) for _, edges, _, _ in self._pending]
        kernels.run_batch(
            [x for _, _, x, _ in self._pending],
            np.array(grid_of, np.intp),
            np.array(lo, np.float64),
            np.array(scale, np.float64),
            np.array(cells, np.intp),
            tables,
            padded,
            hists,
        )
        for (slot, _, _, _), counts in zip(self._pending, hists, strict=True):
            self._results[slot] = counts
        self._pending = []

    def _collect(self) -> list[IntArray]:
        out = [r for r in self._results if r is not None]
        if len(out) != len(self._results):
            raise RuntimeError("histograms requested before they were computed")
        return out


def _new_worker() -> ThreadPoolExecutor:
    # Its thread starts with the first batch sent to it.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-histograms")


def _after_fork() -> None:
    # A forked child inherits the pool but not its thread; batches sent to it would
    # wait forever.
    global _worker  # noqa: PLW0603
    _worker = _new_worker()


_worker = _new_worker()
os.register_at_fork(after_in_child=_after_fork)
