"""alert deliveries: one row per (alert event, channel) with its retry schedule

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("event_id", _ID, nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("dedup_key", sa.String(300), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["alert_events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_alert_deliveries"),
        sa.UniqueConstraint("event_id", "channel", name="uq_alert_deliveries_event_channel"),
    )
    op.create_index(
        "ix_alert_deliveries_status_due", "alert_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_alert_deliveries_channel_dedup", "alert_deliveries", ["channel", "dedup_key"]
    )


def downgrade() -> None:
    op.drop_index("ix_alert_deliveries_channel_dedup", table_name="alert_deliveries")
    op.drop_index("ix_alert_deliveries_status_due", table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
