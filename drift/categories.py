"""The categorical column sketch, and the caps that bound it.

A window's categorical column is fed by the stream: without a bound, a stream of
distinct values (ids, free text, an attack) grows its memory and its stored row
without limit. :class:`CategoryCaps` bounds both the number of distinct values
kept and their length; what does not fit is counted, never dropped silently.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OTHER = "__other__"


def category_rank(value: str) -> tuple[int, int, str]:
    """Where ``value`` stands when a capped sketch chooses which values to keep.

    Shorter values first, so the values a length cap admits are always a prefix
    of this order; then a stable hash (never Python's salted ``hash``), so every
    process, partition and replay ranks a value the same; the value breaks ties.
    """
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return len(value), int.from_bytes(digest, "big"), value


@dataclass(frozen=True, slots=True)
class CategoryCaps:
    """Bounds on one window's categorical sketches (``None``: unbounded).

    ``max_values`` distinct values are kept per column; ``max_length`` is the
    longest value (in characters) kept. Everything else is counted in ``other``.
    """

    max_values: int | None = None
    max_length: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_values", "max_length"):
            limit = getattr(self, name)
            if limit is not None and limit < 1:
                raise ValueError(f"{name} must be at least 1, got {limit}")


def _tighter(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


@dataclass
class CategoricalSketch:
    """Value counts of one categorical column; values are kept as strings.

    With caps, a window's memory stays bounded whatever the stream sends. A value
    longer than ``max_length`` characters is not kept but counted in ``other``
    (never truncated: a cut value could pass for another, or for a reference
    category). Of the values that fit, the ``max_values`` of lowest
    :func:`category_rank` (the shortest, then by a stable hash) are kept, the
    others are counted in ``other``. The rank does not depend on arrival order,
    which keeps merging exact: whichever way a stream is split, its kept values
    are the lowest-ranked of all it sent, so ``merge`` gives the sketch of both
    parts fed in sequence. Merging sketches of different caps applies the tighter
    ones, and is exact too: as the rank puts shorter values first, what the
    tighter caps keep was kept by either side. ``other`` is compared
    with the reference as one more category the reference never saw (the
    ``__other__`` bucket of :meth:`comparable_counts`): an overflowed value was
    not kept, so whether the reference knew it is no longer known.

    >>> s = CategoricalSketch(caps=CategoryCaps(max_values=2, max_length=5))
    >>> s.update(["a", "b", "c", "a", "too long", None])
    >>> len(s.counts), s.other, s.count, s.nulls
    (2, 2, 5, 1)
    """

    counts: Counter[str] = field(default_factory=Counter)
    nulls: int = 0
    other: int = 0
    caps: CategoryCaps = field(default_factory=CategoryCaps)
    # The highest rank kept while full: a new value ranked above it is not kept.
    _ceiling: tuple[int, int, str] | None = field(default=None, compare=False, repr=False)

    def update(self, values: Sequence[Any] | np.ndarray) -> None:
        counted = Counter(values)
        if any(type(k) is not str for k in counted if k is not None):
            # True == 1 in a Counter, so non-strings are turned to text before counting.
            counted = Counter(v if v is None or type(v) is str else str(v) for v in values)
        self.nulls += counted.pop(None, 0)
        self._add(counted)

    def merge(self, other: CategoricalSketch) -> None:
        self.nulls += other.nulls
        self.other += other.other
        caps = CategoryCaps(
            _tighter(self.caps.max_values, other.caps.max_values),
            _tighter(self.caps.max_length, other.caps.max_length),
        )
        if caps != self.caps:
            self.caps = caps
            kept, self.counts, self._ceiling = self.counts, Counter(), None
            self._add(kept)
        self._add(other.counts)

    def _add(self, counted: Mapping[str, int]) -> None:
        counts = self.counts
        max_values, max_length = self.caps.max_values, self.caps.max_length
        if max_values is None and max_length is None:
            counts.update(counted)
            return
        ceiling = self._ceiling
        fresh = 0
        for value, n in counted.items():
            if value in counts:
                counts[value] += n
            elif (max_length is not None and len(value) > max_length) or (
                ceiling is not None and category_rank(value) > ceiling
            ):
                self.other += n
            else:
                counts[value] = n
                fresh += 1
        if fresh and max_values is not None and len(counts) >= max_values:
            self._trim(max_values)

    def _trim(self, max_values: int) -> None:
        ranked = sorted(self.counts, key=category_rank)
        for value in ranked[max_values:]:
            self.other += self.counts.pop(value)
        self._ceiling = category_rank(ranked[min(max_values, len(ranked)) - 1])

    @property
    def count(self) -> int:
        """Non-null values, those counted in ``other`` included."""
        return sum(self.counts.values()) + self.other

    def comparable_counts(self, reserved: Collection[str] = ()) -> dict[str, int]:
        """Positive counts, with ``other`` as one more category: ``__other__``, or with
        more underscores when a kept or ``reserved`` (reference) value has that name."""
        out = {k: n for k, n in self.counts.items() if n > 0}
        if self.other:
            out[self.other_key(out.keys() | set(reserved))] = self.other
        return out

    @staticmethod
    def other_key(taken: Collection[str]) -> str:
        """The name of the overflow bucket among the category names ``taken``."""
        key = OTHER
        while key in taken:
            key = f"_{key}_"
        return key

    def to_state(self) -> list[Any]:
        state: list[Any] = ["c", dict(sorted(self.counts.items())), self.nulls]
        caps = self.caps
        if self.other or caps.max_values is not None or caps.max_length is not None:
            state += [self.other, caps.max_values, caps.max_length]
        return state

    @classmethod
    def from_state(cls, state: list[Any]) -> CategoricalSketch:
        if len(state) == 3:
            _, counts, nulls = state
            return cls(counts=Counter(counts), nulls=nulls)
        _, counts, nulls, other, max_values, max_length = state
        sketch = cls(
            counts=Counter(counts),
            nulls=nulls,
            other=other,
            caps=CategoryCaps(max_values, max_length),
        )
        if max_values is not None and len(sketch.counts) >= max_values:
            sketch._trim(max_values)
        return sketch
