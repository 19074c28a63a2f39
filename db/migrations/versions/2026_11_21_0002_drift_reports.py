"""reference profiles, drift reports with per-feature results, rendered HTML

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FLOAT = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "reference_profiles",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(1000), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("profile", sa.LargeBinary(), nullable=False),
        sa.Column("prediction", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reference_profiles"),
        sa.UniqueConstraint("model", "version", name="uq_reference_profiles_version"),
    )
    op.create_table(
        "drift_reports",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(200), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("profile_id", _ID, nullable=False),
        sa.Column("profile_version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("reference_rows", sa.BigInteger(), nullable=False),
        sa.Column("features_drifted", sa.Integer(), nullable=False),
        sa.Column("features_judged", sa.Integer(), nullable=False),
        sa.Column("drifted_share", _FLOAT, nullable=True),
        sa.Column("dataset_drift", sa.Boolean(), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("prediction_method", sa.String(32), nullable=True),
        sa.Column("prediction_score", _FLOAT, nullable=True),
        sa.Column("prediction_p_value", _FLOAT, nullable=True),
        sa.Column("prediction_drifted", sa.Boolean(), nullable=True),
        sa.Column("current_sample", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_drift_reports"),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["reference_profiles.id"],
            name="fk_drift_reports_profile_id_reference_profiles",
        ),
        sa.UniqueConstraint(
            "model", "model_version", "window_start", "profile_id", name="uq_drift_reports_window"
        ),
    )
    # Listing a model's reports newest first is the common read.
    op.create_index("ix_drift_reports_model_window", "drift_reports", ["model", "window_start"])
    op.create_table(
        "drift_feature_results",
        sa.Column("report_id", _ID, nullable=False),
        sa.Column("feature", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("method", sa.String(32), nullable=True),
        sa.Column("score", _FLOAT, nullable=True),
        sa.Column("p_value", _FLOAT, nullable=True),
        sa.Column("p_value_adjusted", _FLOAT, nullable=True),
        sa.Column("threshold", _FLOAT, nullable=True),
        sa.Column("drifted", sa.Boolean(), nullable=True),
        sa.Column("reference_count", sa.BigInteger(), nullable=False),
        sa.Column("current_count", sa.BigInteger(), nullable=False),
        sa.Column("reference_null_share", _FLOAT, nullable=False),
        sa.Column("current_null_share", _FLOAT, nullable=False),
        sa.Column("unseen_categories", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("report_id", "feature", name="pk_drift_feature_results"),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["drift_reports.id"],
            name="fk_drift_feature_results_report_id_drift_reports",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "report_html",
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("report_id", _ID, nullable=False),
        sa.Column("html", sa.LargeBinary(), nullable=False),
        sa.Column("rendered_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model", name="pk_report_html"),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["drift_reports.id"],
            name="fk_report_html_report_id_drift_reports",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("report_html")
    op.drop_table("drift_feature_results")
    op.drop_index("ix_drift_reports_model_window", table_name="drift_reports")
    op.drop_table("drift_reports")
    op.drop_table("reference_profiles")
