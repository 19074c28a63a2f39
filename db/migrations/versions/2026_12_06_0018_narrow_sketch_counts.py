"""narrow sketch counts: window rows store histogram counts as narrow as they fit

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
import numpy as np
from alembic import op

from db.migrations.sketch_rows import rewrite_sketches

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# Format 4 stores each histogram's counts in 1, 2, 4 or 8 bytes, the width after them.
_COUNT_TYPES = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<i8"}


def upgrade() -> None:
    # Rows of format 3 stay readable; a flush that adds to one rewrites it in format 4.
    pass


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


def downgrade() -> None:
    # Earlier revisions' code reads formats 1-3 only: every row written in format 4
    # is rewritten in format 3, batch by batch.
    rewrite_sketches(op.get_bind(), as_format_3)
