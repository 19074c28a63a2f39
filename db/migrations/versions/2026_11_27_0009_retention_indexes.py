"""indexes on the columns retention selects by; concept_drift_alarms retention

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Each retention batch selects by one of these columns; without an index that is a full
# scan of the table per batch (up to retention.max_batches per table and run).
# The foreign keys into retained tables: deleting a report or an alarm clears the links to
# it (ON DELETE SET NULL), which PostgreSQL looks up per deleted row; without an index on
# the referencing column every lookup scans that table.
_INDEXES = (
    ("ix_window_aggregates_window_end", "window_aggregates", "window_end"),
    ("ix_performance_aggregates_window_end", "performance_aggregates", "window_end"),
    ("ix_drift_reports_window_end", "drift_reports", "window_end"),
    ("ix_performance_reports_window_end", "performance_reports", "window_end"),
    ("ix_concept_drift_alarms_prediction_time", "concept_drift_alarms", "prediction_time"),
    ("ix_alert_events_created_at", "alert_events", "created_at"),
    ("ix_idempotency_keys_created_at", "idempotency_keys", "created_at"),
    ("ix_trigger_decisions_concept_alarm_id", "trigger_decisions", "concept_alarm_id"),
    ("ix_trigger_decisions_drift_report_id", "trigger_decisions", "drift_report_id"),
    ("ix_trigger_decisions_performance_report_id", "trigger_decisions", "performance_report_id"),
    ("ix_performance_reports_drift_report_id", "performance_reports", "drift_report_id"),
)


def upgrade() -> None:
    for name, table, column in _INDEXES:
        op.create_index(name, table, [column])


def downgrade() -> None:
    for name, table, _ in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
