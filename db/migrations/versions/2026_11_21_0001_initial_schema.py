"""initial schema: consumer offsets and window aggregates

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consumer_offsets",
        sa.Column("consumer_group", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("watermark", sa.Float(precision=53), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("consumer_group", "topic", "partition", name="pk_consumer_offsets"),
    )
    op.create_table(
        "window_aggregates",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("layout", sa.String(32), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("late_count", sa.BigInteger(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_window_aggregates"),
        sa.UniqueConstraint(
            "model",
            "model_version",
            "window_start",
            "partition",
            "layout",
            name="uq_window_aggregates_key",
        ),
    )


def downgrade() -> None:
    op.drop_table("window_aggregates")
    op.drop_table("consumer_offsets")
