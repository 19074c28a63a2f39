"""an index on alert_events by model and kind, for the newest event of a condition

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Each judged window looks up its model's newest alert event of one kind
    # (db.outbox.last_action); without the index every lookup scanned the events of
    # all models, so a tick over n models cost n scans of a table that grows with n.
    op.create_index("ix_alert_events_model_kind", "alert_events", ["model", "kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_alert_events_model_kind", table_name="alert_events")
