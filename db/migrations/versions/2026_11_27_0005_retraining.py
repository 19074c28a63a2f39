"""retraining: model registry, trigger decisions, runs and their phases, gate results, alert outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FLOAT = sa.Float(precision=53)


def _id() -> sa.Column[int]:
    return sa.Column("id", _ID, autoincrement=True, nullable=False)


def _run_fk(ondelete: str, nullable: bool = True) -> list[Any]:
    return [
        sa.Column("run_id", _ID, nullable=nullable),
        sa.ForeignKeyConstraint(["run_id"], ["retrain_runs.id"], ondelete=ondelete),
    ]


def upgrade() -> None:
    op.create_table(
        "retrain_runs",
        _id(),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data_from", UTCDateTime(), nullable=False),
        sa.Column("data_to", UTCDateTime(), nullable=False),
        sa.Column("data_uri", sa.Text(), nullable=True),
        sa.Column("data_rows", sa.BigInteger(), nullable=True),
        sa.Column("champion_version_id", sa.BigInteger(), nullable=True),
        sa.Column("candidate_version_id", sa.BigInteger(), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("train_log_tail", sa.Text(), nullable=True),
        sa.Column("validate_log_tail", sa.Text(), nullable=True),
        sa.Column("phase_deadline", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_retrain_runs"),
    )
    # One active run per model, whatever the replicas do.
    op.create_index(
        "uq_retrain_runs_active",
        "retrain_runs",
        ["model"],
        unique=True,
        sqlite_where=sa.text("active = 1"),
        postgresql_where=sa.text("active"),
    )
    op.create_index("ix_retrain_runs_model_created", "retrain_runs", ["model", "created_at"])
    op.create_table(
        "model_versions",
        _id(),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        *_run_fk("SET NULL"),
        sa.Column("data_from", UTCDateTime(), nullable=True),
        sa.Column("data_to", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("model", "version", name="uq_model_versions_version"),
    )
    # One production version per model.
    op.create_index(
        "uq_model_versions_production",
        "model_versions",
        ["model"],
        unique=True,
        sqlite_where=sa.text("stage = 'production'"),
        postgresql_where=sa.text("stage = 'production'"),
    )
    op.create_table(
        "trigger_decisions",
        _id(),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("cause_kind", sa.String(32), nullable=False),
        sa.Column("cause_key", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("drift_report_id", _ID, nullable=True),
        sa.Column("performance_report_id", _ID, nullable=True),
        sa.Column("concept_alarm_id", _ID, nullable=True),
        sa.Column("evidence", sa.Text(), nullable=False),
        *_run_fk("SET NULL"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trigger_decisions"),
        sa.ForeignKeyConstraint(["drift_report_id"], ["drift_reports.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["performance_report_id"], ["performance_reports.id"], ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["concept_alarm_id"], ["concept_drift_alarms.id"], ondelete="SET NULL"
        ),
        sa.UniqueConstraint("model", "cause_kind", "cause_key", name="uq_trigger_decisions_cause"),
    )
    op.create_table(
        "run_phases",
        _id(),
        *_run_fk("CASCADE", nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_phases"),
    )
    op.create_table(
        "validation_results",
        _id(),
        *_run_fk("CASCADE", nullable=False),
        sa.Column("gate", sa.String(32), nullable=False),
        sa.Column("metric", sa.String(32), nullable=True),
        sa.Column("slice", sa.String(200), nullable=True),
        sa.Column("champion_value", _FLOAT, nullable=True),
        sa.Column("candidate_value", _FLOAT, nullable=True),
        sa.Column("threshold", _FLOAT, nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_validation_results"),
    )
    op.create_table(
        "alert_events",
        _id(),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        *_run_fk("SET NULL"),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
        sa.UniqueConstraint("key", name="uq_alert_events_key"),
    )


def downgrade() -> None:
    for table in ("alert_events", "validation_results", "run_phases", "trigger_decisions"):
        op.drop_table(table)
    op.drop_index("uq_model_versions_production", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_index("ix_retrain_runs_model_created", table_name="retrain_runs")
    op.drop_index("uq_retrain_runs_active", table_name="retrain_runs")
    op.drop_table("retrain_runs")
