"""Which events a full row sample can take: keys computed only where they can win."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drift.rowsample import sample_key, sample_keys_below

PROPERTY = settings(deadline=None, max_examples=300)
IDS = st.lists(st.text(max_size=12), max_size=40)


def below(ids: list[str], limit: int | None) -> tuple[list[int], list[int]]:
    keys = [sample_key(i) for i in ids]
    picked = [j for j, k in enumerate(keys) if limit is None or k < limit]
    return picked, [keys[j] for j in picked]


@PROPERTY
@given(ids=IDS, limit=st.none() | st.integers(0, 2**64))
def test_the_ids_below_a_limit_are_those_whose_whole_key_is(
    ids: list[str], limit: int | None
) -> None:
    assert sample_keys_below(ids, limit) == below(ids, limit)


@PROPERTY
@given(ids=st.lists(st.text(max_size=12), min_size=1, max_size=40), data=st.data())
def test_limits_at_an_ids_own_key_and_its_checksum_boundary(
    ids: list[str], data: st.DataObject
) -> None:
    # The limits where the shortcut on the key's high 32 bits could go wrong: an id's
    # key itself (not below), one past it, and the edges of its CRC-32's range.
    key = sample_key(data.draw(st.sampled_from(ids)))
    high = key >> 32 << 32
    for limit in (key, key + 1, high, high + 1, high + 2**32, max(high - 1, 0)):
        assert sample_keys_below(ids, limit) == below(ids, limit)
