"""Offset bookkeeping, kept apart from I/O: which offsets are safe to store.

Per owned partition it tracks what SQL holds (``stored``), how far processing
has got (``position``) and the event-time watermark at that position. A flush
turns the difference into :class:`OffsetAdvance` records that go into the same
transaction as the aggregates they account for.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.repositories import OffsetAdvance, StoredOffset

TopicPartitionKey = tuple[str, int]


@dataclass(slots=True)
class PartitionProgress:
    stored: int | None
    position: int | None
    watermark: float | None

    @property
    def dirty(self) -> bool:
        return self.position is not None and self.position != self.stored


class OffsetBook:
    def __init__(self) -> None:
        self._parts: dict[TopicPartitionKey, PartitionProgress] = {}

    def assign(self, tp: TopicPartitionKey, stored: StoredOffset | None) -> None:
        """Start tracking ``tp`` from what SQL holds for it (None: nothing yet)."""
        if stored is None:
            self._parts[tp] = PartitionProgress(None, None, None)
        else:
            self._parts[tp] = PartitionProgress(
                stored.next_offset, stored.next_offset, stored.watermark
            )

    def revoke(self, tp: TopicPartitionKey) -> None:
        self._parts.pop(tp, None)

    def owns(self, tp: TopicPartitionKey) -> bool:
        return tp in self._parts

    def owned(self) -> list[TopicPartitionKey]:
        return list(self._parts)

    def watermark(self, tp: TopicPartitionKey) -> float | None:
        return self._parts[tp].watermark

    def stored(self, tp: TopicPartitionKey) -> int | None:
        """The next offset SQL holds for ``tp`` as far as this book knows (None: none)."""
        return self._parts[tp].stored

    def position(self, tp: TopicPartitionKey) -> int | None:
        part = self._parts.get(tp)
        return None if part is None else part.position

    def advance(self, tp: TopicPartitionKey, next_offset: int, watermark: float | None) -> None:
        part = self._parts[tp]
        part.position = next_offset
        part.watermark = watermark

    def pending(self) -> list[OffsetAdvance]:
        return [
            OffsetAdvance(tp[0], tp[1], p.stored, p.position, p.watermark)
            for tp, p in self._parts.items()
            if p.dirty and p.position is not None
        ]

    def confirm(self, advances: list[OffsetAdvance]) -> None:
        """Record that ``advances`` are committed in SQL."""
        for a in advances:
            part = self._parts.get((a.topic, a.partition))
            if part is not None:
                part.stored = a.next_offset

    def reset(self, tp: TopicPartitionKey, stored: StoredOffset | None) -> None:
        """Forget unflushed progress: processing restarts from what SQL holds."""
        self.assign(tp, stored)
