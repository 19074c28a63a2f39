"""label join state, performance aggregates per window and partition, performance reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FLOAT = sa.Float(precision=53)
_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "rmse", "mae", "mape")


def upgrade() -> None:
    op.create_table(
        "pending_predictions",
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("event_time", _FLOAT, nullable=False),
        sa.Column("predicted", sa.Text(), nullable=True),
        sa.Column("value", _FLOAT, nullable=True),
        sa.Column("score", _FLOAT, nullable=True),
        sa.Column("expires_at", _FLOAT, nullable=False),
        sa.Column("labeled_at", _FLOAT, nullable=True),
        sa.PrimaryKeyConstraint("partition", "model", "event_id", name="pk_pending_predictions"),
    )
    # The sweep of each flush reads and deletes one partition's expired rows.
    op.create_index(
        "ix_pending_predictions_expiry", "pending_predictions", ["partition", "expires_at"]
    )
    op.create_table(
        "pending_labels",
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("actual", sa.Text(), nullable=False),
        sa.Column("event_time", _FLOAT, nullable=False),
        sa.Column("expires_at", _FLOAT, nullable=False),
        sa.PrimaryKeyConstraint("partition", "model", "event_id", name="pk_pending_labels"),
    )
    op.create_index("ix_pending_labels_expiry", "pending_labels", ["partition", "expires_at"])
    op.create_table(
        "performance_aggregates",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("layout", sa.String(32), nullable=False),
        sa.Column("predicted", sa.BigInteger(), nullable=False),
        sa.Column("labeled", sa.BigInteger(), nullable=False),
        sa.Column("unlabeled", sa.BigInteger(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_performance_aggregates"),
        sa.UniqueConstraint(
            "model",
            "model_version",
            "window_start",
            "partition",
            "layout",
            name="uq_performance_aggregates_key",
        ),
    )
    op.create_table(
        "performance_reports",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("drift_report_id", _ID, nullable=True),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("predicted", sa.BigInteger(), nullable=False),
        sa.Column("labeled", sa.BigInteger(), nullable=False),
        sa.Column("unlabeled", sa.BigInteger(), nullable=False),
        sa.Column("label_coverage", _FLOAT, nullable=True),
        *(sa.Column(name, _FLOAT, nullable=True) for name in _METRICS),
        sa.Column("degradation_metric", sa.String(16), nullable=True),
        sa.Column("reference_value", _FLOAT, nullable=True),
        sa.Column("current_value", _FLOAT, nullable=True),
        sa.Column("statistic", _FLOAT, nullable=True),
        sa.Column("p_value", _FLOAT, nullable=True),
        sa.Column("degraded", sa.Boolean(), nullable=True),
        sa.Column("verdict", sa.Text(), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_performance_reports"),
        sa.ForeignKeyConstraint(
            ["drift_report_id"],
            ["drift_reports.id"],
            name="fk_performance_reports_drift_report_id_drift_reports",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint(
            "model", "model_version", "window_start", name="uq_performance_reports_window"
        ),
    )


def downgrade() -> None:
    op.drop_table("performance_reports")
    op.drop_table("performance_aggregates")
    op.drop_index("ix_pending_labels_expiry", table_name="pending_labels")
    op.drop_table("pending_labels")
    op.drop_index("ix_pending_predictions_expiry", table_name="pending_predictions")
    op.drop_table("pending_predictions")
