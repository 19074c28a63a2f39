"""Fast histograms on fixed, uneven bin edges.

``np.searchsorted`` costs a binary search per value (about 55 ns for 500 edges),
which dominates building a reference profile or a window sketch from large
columns. :class:`EdgeIndex` answers the same question through a uniform grid of
cells: the cell of a value is one multiply, a table gives the number of edges
in earlier cells, and one comparison with the next edge finishes the job; the
rare values whose cell holds several edges step past the others one by one.
Because ``x -> (x - lo) * scale`` is monotone under floating-point rounding, an
edge in an earlier cell is never above the value and an edge in a later cell
never at or below it, so the result equals ``searchsorted(..., side="right")``
exactly, whatever the rounding.

>>> edges = np.array([0.0, 1.0, 2.5, 10.0])
>>> index = EdgeIndex(edges, cells=8)
>>> values = np.array([-3.0, 0.0, 0.5, 1.0, 2.5, 9.99, 10.0, 1e9])
>>> index.bins(values).tolist()
[0, 1, 1, 2, 3, 3, 4, 4]
>>> bool((index.bins(values) == np.searchsorted(edges, values, side="right")).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_CELLS = 1 << 16
# Below this many values the tables cost more to build than they save.
MIN_VALUES_FOR_GRID = 16_384
# Share of values in cells with several edges above which the grid stops paying
# off (heavy-tailed data squeezes most edges into a few cells).
MAX_CROWDED_SHARE = 0.25
# Most edges that :func:`thinned` may drop.
MAX_THINNED_SHARE = 0.02


class EdgeIndex:
    """Bucket index of values against sorted, finite, strictly increasing edges.

    ``bins(x)[i]`` is the number of edges at or below ``x[i]``, the bucket
    convention of :class:`drift.sketch.NumericSketch`. ``x`` must not hold NaN.
    """

    def __init__(
        self,
        edges: FloatArray,
        cells: int = DEFAULT_CELLS,
        span: tuple[float, float] | None = None,
    ) -> None:
        """``span`` limits the grid to where most values are (default: the edges' range).

        Values outside it are placed by a binary search, exactly but slower.
        """
        self.edges = np.ascontiguousarray(edges, dtype=np.float64)
        self._padded = np.append(self.edges, np.inf)
        lo, hi = span or (float(self.edges[0]), float(self.edges[-1]))
        self._usable = len(self.edges) >= 2 and bool(np.isfinite(hi - lo)) and hi > lo
        if not self._usable:
            return
        self._lo, self._hi = lo, hi
        self._scale = cells / (hi - lo)
        self._cells = cells
        below = int(np.searchsorted(self.edges, lo, side="left"))
        inner = self.edges[below : int(np.searchsorted(self.edges, hi, side="right"))]
        # One cell more than the grid has, for values exactly at the top of the span.
        where = _cell(inner, lo, self._scale, cells)
        # before[c]: the number of edges in cells before c, which is also the position
        # of the first edge at or after cell c: a step up after each edge's cell, laid
        # out directly in the narrowest integer type, which keeps the table in cache
        # (that, not arithmetic, bounds the speed).
        small = np.int16 if len(self.edges) < np.iinfo(np.int16).max else np.int32
        steps = np.diff(np.concatenate(([0], where + 1, [cells + 1])))
        self._before: npt.NDArray[np.signedinteger[Any]] = np.repeat(
            np.arange(below, below + inner.size + 1, dtype=small), steps
        )
        shared = where[1:][where[1:] == where[:-1]]
        self._any_crowded = shared.size > 0
        self._crowded = np.zeros(cells + 1, dtype=bool)
        self._crowded[shared] = True

    def worthwhile(self, sample: FloatArray) -> bool:
        """Whether the grid beats a binary search on data like ``sample``."""
        if not self._usable or sample.size == 0:
            return False
        crowded = float(np.mean(self._crowded[_cell(sample, self._lo, self._scale, self._cells)]))
        return crowded <= MAX_CROWDED_SHARE

    def bins(
        self, x: FloatArray, extent: tuple[float, float] | None = None
    ) -> npt.NDArray[np.integer[Any]]:
        """Bucket of each value; ``extent`` is ``(x.min(), x.max())`` when already known."""
        if not self._usable or x.size == 0:
            return np.searchsorted(self.edges, x, side="right")
        lowest, highest = extent or (float(x.min()), float(x.max()))
        # The extremes tell, without a pass over the data, whether any value left the span.
        below, above = lowest < self._lo, highest > self._hi
        cell = _cell(x, self._lo, self._scale, self._cells, clip=below or above)
        idx: npt.NDArray[np.signedinteger[Any]] = self._before[cell]
        # The first edge at or after the value's cell: above the value unless inside it.
        idx += x >= self._padded[idx]
        if self._any_crowded:
            active = np.flatnonzero(self._crowded[cell])
            # Each pass moves the remaining values past one more edge of their cell.
            while active.size:
                ahead = x[active] >= self._padded[idx[active]]
                active = active[ahead]
                idx[active] += 1
        if below:
            self._search(x, idx, x < self._lo)
        if above:
            self._search(x, idx, x > self._hi)
        return idx

    def _search(
        self, x: FloatArray, idx: npt.NDArray[np.signedinteger[Any]], where: npt.NDArray[np.bool_]
    ) -> None:
        at = np.flatnonzero(where)
        idx[at] = np.searchsorted(self.edges, x[at], side="right")


def _cell(
    x: FloatArray, lo: float, scale: float, cells: int, clip: bool = True
) -> npt.NDArray[np.intp]:
    """Grid cell of each value: 0..cells, where cell ``cells`` holds only the span's top."""
    u = np.subtract(x, lo)
    np.multiply(u, scale, out=u)
    if clip:
        np.clip(u, 0.0, cells, out=u)
    return u.astype(np.intp)


def thinned(edges: FloatArray, span: tuple[float, float], cells: int = DEFAULT_CELLS) -> FloatArray:
    """``edges`` without those sharing a grid cell with a lower edge, if few do.

    A cell holding two edges sends every value of the column through a slower
    second pass; edges that close (a few millionths of the range apart) carry
    no information worth that. When many edges crowd (heavy tails), all stay.

    >>> edges = np.sort(np.append(np.linspace(0.0, 1.0, 101), 0.5000001))
    >>> len(edges), len(thinned(edges, (0.0, 1.0), cells=1000))
    (102, 101)
    """
    lo, hi = span
    if not (np.isfinite(hi - lo) and hi > lo):
        return edges
    inside = np.flatnonzero((edges >= lo) & (edges <= hi))
    cell = _cell(edges[inside], lo, cells / (hi - lo), cells)
    repeat = inside[1:][cell[1:] == cell[:-1]]
    if repeat.size == 0 or repeat.size > MAX_THINNED_SHARE * edges.size:
        return edges
    return np.delete(edges, repeat)


def histogram(
    edges: FloatArray,
    x: FloatArray,
    index: EdgeIndex | None = None,
    extent: tuple[float, float] | None = None,
) -> IntArray:
    """Counts of ``x`` in the ``len(edges) + 1`` buckets of a NumericSketch.

    >>> histogram(np.array([0.0, 1.0]), np.array([-1.0, 0.0, 0.5, 1.0, 7.0])).tolist()
    [1, 2, 2]
    """
    if index is not None and x.size >= MIN_VALUES_FOR_GRID:
        idx = index.bins(x, extent)
    else:
        idx = np.searchsorted(edges, x, side="right")
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)
