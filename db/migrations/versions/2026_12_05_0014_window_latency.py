"""window latency: the latency_ms sketch of each window aggregate

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: rows written before this revision, and windows whose events carry no
    # latency_ms, have none.
    op.add_column("window_aggregates", sa.Column("latency", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # batch mode: older SQLite cannot drop a column in place.
    with op.batch_alter_table("window_aggregates") as batch:
        batch.drop_column("latency")
