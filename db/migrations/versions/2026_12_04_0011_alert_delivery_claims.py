"""alert deliveries: a claim (who sends it, until when), so two workers never send one twice

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alert_deliveries", sa.Column("claimed_by", sa.String(64), nullable=True))
    op.add_column("alert_deliveries", sa.Column("claimed_until", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # batch mode: older SQLite cannot drop a column in place.
    with op.batch_alter_table("alert_deliveries") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
