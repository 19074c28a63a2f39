"""What the migrations that change the window rows' sketch format share."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import Connection

_BATCH = 500


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
