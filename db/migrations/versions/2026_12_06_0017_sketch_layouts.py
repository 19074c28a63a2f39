"""sketch layouts: each layout's bin edges, stored once instead of in every window row

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime
from db.migrations.sketch_rows import rewrite_sketches
from drift.sketch import LayoutEdges, WindowSketch

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before this revision keep their edges inline and stay readable;
    # a flush that adds to one rewrites it without them.
    op.create_table(
        "sketch_layouts",
        sa.Column("layout", sa.String(32), nullable=False),
        sa.Column("edges", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("layout", name="pk_sketch_layouts"),
    )


def downgrade() -> None:
    # Earlier revisions' code reads only rows that carry their edges: each row
    # written without them gets them back before the table goes.
    conn = op.get_bind()
    stored = conn.execute(sa.text("SELECT layout, edges FROM sketch_layouts"))
    layouts = {layout: LayoutEdges.from_bytes(raw) for layout, raw in stored}

    def with_edges(raw: bytes) -> bytes | None:
        sketch = WindowSketch.from_bytes(raw, layouts.__getitem__)
        return sketch.to_bytes() if sketch.layout else None

    rewrite_sketches(conn, with_edges)
    op.drop_table("sketch_layouts")
