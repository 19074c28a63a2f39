"""retrain runs: when each job's launch returned (train_launched_at, validate_launched_at)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_COLUMNS = ("train_launched_at", "validate_launched_at")


def upgrade() -> None:
    # Batch mode: SQLite cannot drop a column in place, and the downgrade must work there too.
    with op.batch_alter_table("retrain_runs") as batch:
        for name in _COLUMNS:
            batch.add_column(sa.Column(name, UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retrain_runs") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
