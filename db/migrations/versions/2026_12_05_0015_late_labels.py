"""late labels: report revisions and the batch join's cursor over the label archive

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Reports written before this revision are their window's first and only version.
    op.add_column(
        "performance_reports",
        sa.Column("revision", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("performance_reports", sa.Column("revised_at", UTCDateTime(), nullable=True))
    op.create_table(
        "late_label_cursors",
        sa.Column("consumer_group", sa.String(255), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "consumer_group", "model", "partition", name="pk_late_label_cursors"
        ),
    )
    # What was consumed before this revision was joined under the old rules (a longer
    # join TTL, no late join): the late join starts after it, never re-reading labels the
    # stream may have joined already. The labels topic is not known here, so every
    # topic's offsets are kept; the job reads the labels topic's.
    op.create_table(
        "late_label_starts",
        sa.Column("consumer_group", sa.String(255), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "consumer_group", "topic", "partition", name="pk_late_label_starts"
        ),
    )
    op.execute(
        "INSERT INTO late_label_starts (consumer_group, topic, partition, next_offset) "
        "SELECT consumer_group, topic, partition, next_offset FROM consumer_offsets"
    )


def downgrade() -> None:
    op.drop_table("late_label_starts")
    op.drop_table("late_label_cursors")
    # batch mode: older SQLite cannot drop a column in place.
    with op.batch_alter_table("performance_reports") as batch:
        batch.drop_column("revised_at")
        batch.drop_column("revision")
