"""What the migrations that change the window rows' sketch format share."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import sqlalchemy as sa
from sqlalchemy import Connection

_BATCH = 500
# Format 4 stores each histogram's counts in 1, 2, 4 or 8 bytes, the width after them.
_COUNT_TYPES = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<i8"}


def rewrite_sketches(conn: Connection, rewrite: Callable[[bytes], bytes | None]) -> None:
    """Replace each window row's sketch by ``rewrite(sketch)`` (None: leave the row),
    reading the table in batches of rows by id."""
    last = None
    while True:
        batch = conn.execute(
            sa.text(
                "SELECT id, sketch FROM window_aggregates"
                + ("" if last is None else " WHERE id > :last")
                + f" ORDER BY id LIMIT {_BATCH}"
            ),
            {} if last is None else {"last": last},
        ).all()
        if not batch:
            return
        for row_id, raw in batch:
            new = rewrite(raw)
            if new is not None:
                conn.execute(
                    sa.text("UPDATE window_aggregates SET sketch = :sketch WHERE id = :id"),
                    {"sketch": new, "id": row_id},
                )
        last = batch[-1][0]


def as_format_3(raw: bytes) -> bytes | None:
    """A format-4 row's sketch in format 3 (8-byte counts), None for any other row."""
    state: dict[str, Any] = msgspec.msgpack.decode(zlib.decompress(raw))
    if state.get("v") != 4:
        return None
    columns = [column for _, column in state["features"]] + [state["prediction"]]
    for column in columns:
        if column[0] == "n" and len(column) == 10:
            counts = np.frombuffer(column[8], dtype=_COUNT_TYPES[column[9]])
            column[8:] = [counts.astype("<i8").tobytes()]
    state["v"] = 3
    return zlib.compress(msgspec.msgpack.encode(state), 1)
