"""training provenance: a run's change onset and why its data range was chosen; what a
version's trainer fitted

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("retrain_runs", sa.Column("change_onset", UTCDateTime(), nullable=True))
    op.add_column("retrain_runs", sa.Column("data_note", sa.Text(), nullable=True))
    op.add_column("model_versions", sa.Column("training", sa.Text(), nullable=True))


def downgrade() -> None:
    # batch mode: older SQLite cannot drop a column in place.
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("training")
    with op.batch_alter_table("retrain_runs") as batch:
        batch.drop_column("data_note")
        batch.drop_column("change_onset")
