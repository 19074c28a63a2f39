"""A bounded, mergeable sample of whole events, chosen by a stable hash of their ids.

A window keeps one (see :class:`drift.sketch.WindowSketch`) for exact
small-window tests and for rendering reports; :func:`encode_sample` and
:func:`decode_sample` store it beside a report with its column names.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Sequence
from typing import Any

import msgspec

from drift.errors import SketchCorrupt


def sample_key(event_id: str) -> int:
    """A stable 64-bit hash of an event id that orders events for :class:`RowSample`.

    CRC-32 and Adler-32 are C-speed and identical in every process (Python's
    ``hash`` is salted per process, which would make replays sample differently).
    """
    raw = event_id.encode()
    return (zlib.crc32(raw) << 32) | zlib.adler32(raw)


def sample_keys_below(event_ids: Sequence[str], limit: int | None) -> tuple[list[int], list[int]]:
    """The positions of the ids whose :func:`sample_key` is below ``limit`` (of every id
    when None), and those keys, in order.

    Once a sample is full nearly every key is above its limit. A key's high 32 bits
    are the id's CRC-32, so an id whose CRC-32 alone puts its key at or above
    ``limit`` is passed over after one checksum; the whole key is computed only for
    the few others.
    """
    if limit is None:
        return list(range(len(event_ids))), [sample_key(i) for i in event_ids]
    high, crc32 = limit >> 32, zlib.crc32
    candidates = [j for j, c in enumerate([crc32(i.encode()) for i in event_ids]) if c <= high]
    positions, keys = [], []
    for j in candidates:
        key = sample_key(event_ids[j])
        if key < limit:
            positions.append(j)
            keys.append(key)
    return positions, keys


class RowSample:
    """A bottom-k sample: the ``capacity`` events with the smallest :func:`sample_key`.

    Keeping the smallest keys of a hash is a uniform sample of the events that
    is mergeable exactly: the bottom-k of a union is the bottom-k of the parts'
    bottom-k sets, so partition samples merge into the window's sample and the
    result does not depend on arrival order. ``rows`` hold the feature values
    in the model's feature order followed by the prediction.

    >>> a, b = RowSample(2), RowSample(2)
    >>> a.update([5, 1], [("x", 1.0), ("y", 2.0)])
    >>> b.update([3], [("z", 3.0)])
    >>> a.merge(b)
    >>> a.keys, a.rows
    ([1, 3], [('y', 2.0), ('z', 3.0)])
    """

    def __init__(
        self,
        capacity: int,
        keys: Sequence[int] = (),
        rows: Sequence[tuple[Any, ...]] = (),
    ) -> None:
        self.capacity = capacity
        # A max-heap by key (keys negated) of at most ``capacity`` entries; the
        # sequence number breaks ties so rows are never compared.
        self._heap: list[tuple[int, int, tuple[Any, ...]]] = []
        self._seq = 0
        self._sorted: tuple[list[int], list[tuple[Any, ...]]] | None = None
        # Not stored: keys at or above it are known to lose to rows sampled elsewhere
        # (an earlier flush of the same window), so they are not even built.
        self.ceiling: int | None = None
        self.update(keys, rows)

    @property
    def threshold(self) -> int | None:
        """Keys at or above this cannot enter (None while there is room)."""
        heap = self._heap
        full = -heap[0][0] if heap and len(heap) >= self.capacity else None
        if full is None or self.ceiling is None:
            return self.ceiling if full is None else full
        return min(full, self.ceiling)

    def update(self, keys: Sequence[int], rows: Sequence[tuple[Any, ...]]) -> None:
        if self.capacity <= 0 or not keys:
            return
        heap, capacity = self._heap, self.capacity
        for key, row in zip(keys, rows, strict=True):
            self._seq += 1
            if len(heap) < capacity:
                heapq.heappush(heap, (-key, self._seq, row))
            elif -key > heap[0][0]:
                heapq.heapreplace(heap, (-key, self._seq, row))
        self._sorted = None

    def merge(self, other: RowSample) -> None:
        # Samples of different capacities merge at the smaller one, which is still exact.
        if other.capacity < self.capacity:
            self.capacity = max(other.capacity, 0)
            while len(self._heap) > self.capacity:
                heapq.heappop(self._heap)
            self._sorted = None
        self.update(other.keys, other.rows)

    def _order(self) -> tuple[list[int], list[tuple[Any, ...]]]:
        if self._sorted is None:
            ordered = sorted(self._heap, key=lambda e: -e[0])
            self._sorted = ([-k for k, _, _ in ordered], [r for _, _, r in ordered])
        return self._sorted

    @property
    def keys(self) -> list[int]:
        """The sampled keys, smallest first."""
        return self._order()[0]

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        """The sampled rows in key order."""
        return self._order()[1]

    def column(self, index: int) -> list[Any]:
        return [r[index] for r in self.rows]

    def to_state(self) -> list[Any]:
        return [self.capacity, self.keys, [list(r) for r in self.rows]]

    @classmethod
    def from_state(cls, state: list[Any]) -> RowSample:
        capacity, keys, rows = state
        return cls(capacity, list(keys), [tuple(r) for r in rows])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RowSample):
            return NotImplemented
        return self.to_state() == other.to_state()

    def __repr__(self) -> str:
        return f"RowSample(capacity={self.capacity}, rows={len(self._heap)})"


def encode_sample(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """Sampled rows with their column names, compressed (see :func:`decode_sample`)."""
    return zlib.compress(msgspec.msgpack.encode([list(names), [list(r) for r in rows]]), 1)


def decode_sample(data: bytes) -> dict[str, list[Any]]:
    """Columns of :meth:`WindowSketch.sample_bytes` output, keyed by name."""
    try:
        names, rows = msgspec.msgpack.decode(zlib.decompress(data))
        return {name: [r[i] for r in rows] for i, name in enumerate(names)}
    except (zlib.error, msgspec.DecodeError, TypeError, ValueError, IndexError) as exc:
        raise SketchCorrupt(f"cannot decode a window sample: {exc}") from exc
