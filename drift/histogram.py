"""The numerical column sketch, and the bin edges a sketch layout fixes.

A window row used to carry every numerical column's bin edges: with profile
bins (500 by default, ~590 edges once the tails are added) that is ~110 KB of a
~125 KB row, the same in every row of a layout, and most of what a flush spent
encoding, compressing and decoding. The edges are a function of the layout
(:attr:`drift.schema.ModelSpec.layout` fingerprints them), so storage keeps
them once per layout as :class:`LayoutEdges` and a row names its layout.

>>> s = NumericSketch((0.0, 1.0))
>>> s.update([0.5, 2.0, None])
>>> s.hist.tolist(), s.nulls
([0, 1, 1], 1)
>>> NumericSketch.from_state(s.to_state(inline_edges=False), s.edges) == s
True
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from drift.errors import SketchCorrupt, SketchMismatch

Edges = tuple[float, ...]
# Up to this many values a sketch is updated in Python. numpy's path costs about ten
# calls (~12.5 us here) whatever the count, and with many models a poll brings each
# window a few events at a time: 8 values take 5.4 us this way, 1 value 2.1 us.
# Measured break-even: about 24 values.
SMALL_BATCH = 16
# update_columns amortises numpy's calls over all of a model's dense columns at once,
# so its break-even is lower: 6 values for 22 columns of ~590 edges (sketch_rows).
SMALL_BLOCK = 5
# Histogram counts by stored width in bytes; the widest is signed, as counts were first.
_COUNT_TYPES = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<i8"}
_WIDTHS = ((1, 2**8), (2, 2**16), (4, 2**32), (8, 2**63))


# Binning needs a column's edges as an array between -inf and +inf (_add_sorted; the
# rest take the middle), and converting ~590 edges costs more than binning a flush's
# values for one window row (6.8 us against 5 us for 25). Every sketch of a layout
# shares its edges tuple, so the array is made once per tuple, not once per sketch:
# per sketch, a 200-model flush made 40,000 of them (4.7 KB each). Keyed by the
# tuple's id, with the tuple held so that the id stays its own; cleared when full
# (more layouts x features than any deployment monitors at once).
_BRACKETED: dict[int, tuple[Edges, np.ndarray]] = {}
_BRACKETED_MAX = 16_384


def bracketed(edges: Edges) -> np.ndarray:
    """``edges`` between -inf and +inf as a read-only float64 array, made once per tuple."""
    hit = _BRACKETED.get(id(edges))
    if hit is not None and hit[0] is edges:
        return hit[1]
    array = np.array([-np.inf, *edges, np.inf], dtype=np.float64)
    array.flags.writeable = False
    if len(_BRACKETED) >= _BRACKETED_MAX:
        _BRACKETED.clear()
    _BRACKETED[id(edges)] = (edges, array)
    return array


@dataclass
class NumericSketch:
    """Moments and a fixed-edge histogram of one numerical column.

    ``hist`` has ``len(edges) + 1`` buckets: ``hist[0]`` counts values below
    ``edges[0]``, ``hist[-1]`` values at or above ``edges[-1]``, and
    ``hist[i]`` values in ``[edges[i-1], edges[i])``.
    """

    edges: Edges
    count: int = 0
    nulls: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if self.hist.size == 0:
            self.hist = np.zeros(len(self.edges) + 1, dtype=np.int64)

    def update(self, values: Sequence[Any] | np.ndarray) -> None:
        if len(values) <= SMALL_BATCH:
            self._update_few(values.tolist() if isinstance(values, np.ndarray) else values)
            return
        # None becomes NaN under a float dtype, so nulls are counted with one pass.
        arr = np.asarray(values, dtype=np.float64)
        if arr.size == 0:
            return
        missing = np.isnan(arr)
        n_missing = int(missing.sum())
        if n_missing:
            self.nulls += n_missing
            arr = arr[~missing]
            if arr.size == 0:
                return
        total, total_sq = float(arr.sum()), float(np.dot(arr, arr))
        ordered = self._sorts(arr.size)
        if ordered:
            arr = np.sort(arr)
            low, high = float(arr[0]), float(arr[-1])
        else:
            low, high = float(arr.min()), float(arr.max())
        self._add(arr, total, total_sq, low, high, ordered)

    def _add(
        self,
        values: np.ndarray,
        total: float,
        total_sq: float,
        low: float,
        high: float,
        ordered: bool,
    ) -> None:
        """Count NaN-free ``values`` (ascending when ``ordered``), whose sum, sum of
        squares and extremes are given."""
        if ordered:
            self._add_sorted(values)
        else:
            self._add_unsorted(values)
        self.count += int(values.size)
        self.total += total
        self.total_sq += total_sq
        self.minimum = min(self.minimum, low)
        self.maximum = max(self.maximum, high)

    # Binning a value is a binary search over the edges, with a branch miss about every
    # other step (~55 ns a value on fresh data). With enough values it is cheaper to
    # sort them and find each edge among them: the edges ascend, and numpy narrows
    # each search from the previous answer. Measured break-even: about 100 values
    # for 590 edges, 60 for 100 or 20 edges; at 512 values 1.6-2.1x faster.
    def _sorts(self, n: int) -> bool:
        return n >= 64 and 5 * n >= self.hist.size

    def _add_unsorted(self, values: np.ndarray) -> None:
        idx = self._edges_array().searchsorted(values, side="right")
        self.hist += np.bincount(idx, minlength=self.hist.size)

    def _add_sorted(self, ordered: np.ndarray) -> None:
        """Count sorted, NaN-free values into the bins."""
        # Nothing is below -inf; every value counts below the +inf bracket, +inf too.
        below = ordered.searchsorted(self._bracketed_edges(), side="left")
        below[-1] = ordered.size
        self.hist += below[1:] - below[:-1]

    def _edges_array(self) -> np.ndarray:
        return self._bracketed_edges()[1:-1]

    def _bracketed_edges(self) -> np.ndarray:
        return bracketed(self.edges)

    def _update_few(self, values: Sequence[Any]) -> None:
        """:meth:`update` for a few values, in Python: the same counts and bins
        (``bisect_right`` is ``searchsorted(side="right")``), without numpy's fixed cost."""
        # NaN is the one value unequal to itself; math.isnan would cost a call per value.
        present = [v for v in values if v is not None and v == v]  # noqa: PLR0124
        self.nulls += len(values) - len(present)
        if not present:
            return
        self.count += len(present)
        self.total += sum(present)
        self.total_sq += sum([v * v for v in present])
        low, high = min(present), max(present)
        if low < self.minimum:
            self.minimum = float(low)
        if high > self.maximum:
            self.maximum = float(high)
        edges = self.edges
        hist = self.hist
        for v in present:
            hist[bisect_right(edges, v)] += 1

    def merge(self, other: NumericSketch) -> None:
        if other.edges is not self.edges and other.edges != self.edges:
            raise SketchMismatch("numeric sketches have different bin edges")
        self.count += other.count
        self.nulls += other.nulls
        self.total += other.total
        self.total_sq += other.total_sq
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.hist += other.hist

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def variance(self) -> float | None:
        """Population variance from the moment sums (None when empty)."""
        if not self.count:
            return None
        mean = self.total / self.count
        return max(self.total_sq / self.count - mean * mean, 0.0)

    def to_state(self, *, inline_edges: bool = True) -> list[Any]:
        """The sketch as plain values; without ``inline_edges`` the edges are left
        out (None), for a reader that knows them from the layout, and the counts are
        stored in the narrowest unsigned width that holds them, named after them."""
        state = [
            "n",
            list(self.edges) if inline_edges else None,
            self.count,
            self.nulls,
            self.total,
            self.total_sq,
            self.minimum,
            self.maximum,
        ]
        if inline_edges:  # the format every release reads
            return [*state, self.hist.astype("<i8").tobytes()]
        # Every flush rewrites each touched window row: with many models most of its
        # time went to compressing 8-byte counts that are mostly zero. Narrow counts
        # encode 2-4x faster and decode about 2x faster.
        # No bucket holds more than the values counted (each lands in one), so a small
        # count settles the width without a pass over the buckets (~1.5 us a column).
        top = self.count if self.count < 2**8 else int(self.hist.max())
        width = next(w for w, limit in _WIDTHS if top < limit)
        return [*state, self.hist.astype(_COUNT_TYPES[width]).tobytes(), width]

    @classmethod
    def from_state(cls, state: list[Any], edges: Edges | None = None) -> NumericSketch:
        """The sketch of ``to_state``; ``edges`` serve when the state left them out."""
        _, stored, count, nulls, total, total_sq, lo, hi, hist, *narrow = state
        if stored is not None:
            edges = tuple(stored)
        elif edges is None:
            raise SketchCorrupt("a numerical sketch without its bin edges, and none were given")
        width = narrow[0] if narrow else 8
        if width not in _COUNT_TYPES or len(narrow) > 1:
            raise SketchCorrupt(f"a numerical sketch with counts {width!r} bytes wide")
        counts = np.frombuffer(hist, dtype=_COUNT_TYPES[width]).astype(np.int64)
        if counts.size != len(edges) + 1:
            raise SketchCorrupt(f"{counts.size} histogram buckets for {len(edges)} bin edges")
        return cls(
            edges=edges,
            count=count,
            nulls=nulls,
            total=total,
            total_sq=total_sq,
            minimum=lo,
            maximum=hi,
            hist=counts,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericSketch):
            return NotImplemented
        return self.to_state() == other.to_state()


def update_columns(sketches: Sequence[NumericSketch], block: np.ndarray) -> None:
    """``sketches[j].update(block[j])`` for every row of a 2-D float64 ``block``.

    The same counts, bins and extremes, with the moments of all rows in a few numpy
    calls where each row alone costs about ten, and the rows sorted in one (a model's
    numerical features are read together). Rows holding a null or an infinity take
    the one-row path.
    """
    n = block.shape[1]
    if n <= SMALL_BLOCK or len(sketches) < 2:
        for sketch, row in zip(sketches, block, strict=True):
            sketch.update(row)
        return
    with np.errstate(invalid="ignore", over="ignore"):
        totals = block.sum(axis=1)
    # A finite sum proves a row clean: a NaN or an infinity would have carried into it.
    clean = np.isfinite(totals)
    if not clean.all():
        for j in np.flatnonzero(~clean).tolist():
            sketches[j].update(block[j])
        sketches = [s for s, ok in zip(sketches, clean.tolist(), strict=True) if ok]
        block, totals = block[clean], totals[clean]
        if not sketches:
            return
    squares = np.einsum("ij,ij->i", block, block).tolist()
    # All rows sorted in one call, when the rows sort (NumericSketch._sorts).
    ordered = all(s._sorts(n) for s in sketches)
    if ordered:
        block = np.sort(block, axis=1)
        lows, highs = block[:, 0].tolist(), block[:, -1].tolist()
    else:
        lows, highs = block.min(axis=1).tolist(), block.max(axis=1).tolist()
    for j, (sketch, total) in enumerate(zip(sketches, totals.tolist(), strict=True)):
        sketch._add(block[j], total, squares[j], lows[j], highs[j], ordered)


@dataclass(frozen=True)
class LayoutEdges:
    """The bin edges of one sketch layout: each numerical feature's, and the
    prediction's when it is numerical."""

    features: Mapping[str, Edges]
    prediction: Edges | None = None

    def to_bytes(self) -> bytes:
        state = {
            "v": 1,
            "features": [[name, list(edges)] for name, edges in self.features.items()],
            "prediction": None if self.prediction is None else list(self.prediction),
        }
        return zlib.compress(msgspec.msgpack.encode(state), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> LayoutEdges:
        try:
            state = msgspec.msgpack.decode(zlib.decompress(data))
            if state.get("v") != 1:
                raise SketchCorrupt(f"unsupported layout edges format {state.get('v')!r}")
            prediction = state["prediction"]
            return cls(
                {str(name): tuple(map(float, edges)) for name, edges in state["features"]},
                None if prediction is None else tuple(map(float, prediction)),
            )
        except (zlib.error, msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise SketchCorrupt(f"cannot decode layout edges: {exc}") from exc


# How a reader finds the edges of the layout a stored sketch names.
EdgeLookup = Callable[[str], LayoutEdges]
