"""streaming concept-drift detectors: per-partition state, alarms, alarms in performance reports

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FLOAT = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "detector_states",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(32), nullable=False),
        sa.Column("loss", sa.String(64), nullable=False),
        sa.Column("labeled", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "model", "model_version", "partition", "detector", name="pk_detector_states"
        ),
    )
    op.create_table(
        "concept_drift_alarms",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("detector", sa.String(32), nullable=False),
        sa.Column("prediction_time", UTCDateTime(), nullable=False),
        sa.Column("label_time", UTCDateTime(), nullable=False),
        sa.Column("labeled", sa.BigInteger(), nullable=False),
        sa.Column("baseline_rate", _FLOAT, nullable=True),
        sa.Column("alarm_rate", _FLOAT, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_concept_drift_alarms"),
    )
    # Performance reports count the alarms of their window.
    op.create_index(
        "ix_concept_drift_alarms_window",
        "concept_drift_alarms",
        ["model", "model_version", "prediction_time"],
    )
    with op.batch_alter_table("performance_reports") as batch:
        batch.add_column(sa.Column("alarms", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("alarm_detectors", sa.String(200), server_default="", nullable=False)
        )
        batch.add_column(sa.Column("concept_drift", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("performance_reports") as batch:
        batch.drop_column("concept_drift")
        batch.drop_column("alarm_detectors")
        batch.drop_column("alarms")
    op.drop_index("ix_concept_drift_alarms_window", table_name="concept_drift_alarms")
    op.drop_table("concept_drift_alarms")
    op.drop_table("detector_states")
