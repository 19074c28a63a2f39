"""OffsetBook: which offsets a flush may store, and what it expects SQL to hold."""

from __future__ import annotations

import pytest

from consumers.offsets import OffsetBook, PartitionProgress
from db.repositories import OffsetAdvance, StoredOffset

TP0 = ("predictions", 0)
TP1 = ("predictions", 1)


def test_assign_without_stored_offset_starts_empty() -> None:
    book = OffsetBook()
    book.assign(TP0, None)
    assert book.owns(TP0)
    assert book.owned() == [TP0]
    assert book.position(TP0) is None
    assert book.watermark(TP0) is None
    assert book.pending() == []


def test_assign_from_stored_offset_is_clean() -> None:
    book = OffsetBook()
    book.assign(TP0, StoredOffset(42, 1000.5))
    assert book.position(TP0) == 42
    assert book.watermark(TP0) == 1000.5
    assert book.pending() == []


def test_advance_from_nothing_expects_none() -> None:
    book = OffsetBook()
    book.assign(TP0, None)
    book.advance(TP0, 10, 99.0)
    assert book.position(TP0) == 10
    assert book.watermark(TP0) == 99.0
    assert book.pending() == [OffsetAdvance("predictions", 0, None, 10, 99.0)]


def test_advance_from_stored_expects_stored() -> None:
    book = OffsetBook()
    book.assign(TP0, StoredOffset(42, 5.0))
    book.advance(TP0, 50, 7.0)
    book.advance(TP0, 60, 8.0)
    assert book.pending() == [OffsetAdvance("predictions", 0, 42, 60, 8.0)]


def test_advance_to_the_stored_offset_is_not_pending() -> None:
    book = OffsetBook()
    book.assign(TP0, StoredOffset(42, 5.0))
    book.advance(TP0, 42, 6.0)
    assert book.pending() == []


def test_pending_lists_only_dirty_partitions_in_assignment_order() -> None:
    book = OffsetBook()
    book.assign(TP1, StoredOffset(3, None))
    book.assign(TP0, None)
    book.assign(("labels", 0), None)
    book.advance(TP0, 1, None)
    book.advance(TP1, 9, 2.0)
    assert book.pending() == [
        OffsetAdvance("predictions", 1, 3, 9, 2.0),
        OffsetAdvance("predictions", 0, None, 1, None),
    ]


def test_confirm_makes_the_advance_the_new_expectation() -> None:
    book = OffsetBook()
    book.assign(TP0, None)
    book.advance(TP0, 10, 1.0)
    advances = book.pending()
    book.confirm(advances)
    assert book.pending() == []
    book.advance(TP0, 15, 2.0)
    assert book.pending() == [OffsetAdvance("predictions", 0, 10, 15, 2.0)]


def test_confirm_of_an_older_advance_keeps_later_progress_pending() -> None:
    book = OffsetBook()
    book.assign(TP0, StoredOffset(0, None))
    book.advance(TP0, 10, 1.0)
    flushed = book.pending()
    book.advance(TP0, 20, 3.0)  # more processed while the flush ran
    book.confirm(flushed)
    assert book.pending() == [OffsetAdvance("predictions", 0, 10, 20, 3.0)]


def test_confirm_records_the_stored_offset() -> None:
    book = OffsetBook()
    book.assign(TP0, None)
    book.advance(TP0, 10, 1.5)
    book.confirm(book.pending())
    assert book._parts[TP0] == PartitionProgress(10, 10, 1.5)


def test_confirm_ignores_revoked_partitions() -> None:
    book = OffsetBook()
    book.assign(TP0, None)
    book.advance(TP0, 10, 1.0)
    advances = book.pending()
    book.revoke(TP0)
    book.confirm(advances)
    assert not book.owns(TP0)
    assert book.pending() == []
    assert book.position(TP0) is None


def test_revoke_forgets_and_tolerates_unknown() -> None:
    book = OffsetBook()
    book.assign(TP0, StoredOffset(1, None))
    book.revoke(TP0)
    book.revoke(TP1)
    assert book.owned() == []
    assert not book.owns(TP0)
    with pytest.raises(KeyError):
        book.advance(TP0, 2, None)
    with pytest.raises(KeyError):
        book.watermark(TP0)


def test_reset_drops_unflushed_progress() -> None:
    book = OffsetBook()
    book.assign(TP0, StoredOffset(5, 50.0))
    book.advance(TP0, 30, 300.0)
    book.reset(TP0, StoredOffset(12, 120.0))
    assert book.position(TP0) == 12
    assert book.watermark(TP0) == 120.0
    assert book.pending() == []
    book.advance(TP0, 13, 121.0)
    assert book.pending() == [OffsetAdvance("predictions", 0, 12, 13, 121.0)]


def test_reset_to_nothing_stored() -> None:
    book = OffsetBook()
    book.assign(TP0, None)
    book.advance(TP0, 30, 300.0)
    book.reset(TP0, None)
    assert book.position(TP0) is None
    assert book.watermark(TP0) is None
    assert book.pending() == []


def test_reassign_replaces_progress() -> None:
    book = OffsetBook()
    book.assign(TP0, None)
    book.advance(TP0, 7, 1.0)
    book.assign(TP0, StoredOffset(3, 0.5))
    assert book.owned() == [TP0]
    assert book.position(TP0) == 3
    assert book.pending() == []


@pytest.mark.parametrize(
    ("stored", "position", "dirty"),
    [(None, None, False), (None, 0, True), (0, 0, False), (0, 1, True), (5, None, False)],
)
def test_partition_progress_dirty(stored: int | None, position: int | None, dirty: bool) -> None:
    assert PartitionProgress(stored, position, None).dirty is dirty
