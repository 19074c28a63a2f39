"""rollouts: canary rollouts of accepted candidates, their phase history and analyses

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from db.base import UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_FLOAT = sa.Float(precision=53)


def _rollout_fk() -> list[Any]:
    return [
        sa.Column("rollout_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(["rollout_id"], ["rollouts.id"], ondelete="CASCADE"),
    ]


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("run_id", _ID, nullable=True),
        sa.Column("stable_version_id", sa.BigInteger(), nullable=False),
        sa.Column("canary_version_id", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("canary_percent", sa.Integer(), nullable=False),
        sa.Column("step_started_at", UTCDateTime(), nullable=True),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("phase_deadline", UTCDateTime(), nullable=True),
        sa.Column("paused_from", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("failed_checks", sa.Integer(), nullable=False),
        sa.Column("router_errors", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sa.ForeignKeyConstraint(["run_id"], ["retrain_runs.id"], ondelete="SET NULL"),
    )
    # One active rollout per model, whatever the replicas do.
    op.create_index(
        "uq_rollouts_active",
        "rollouts",
        ["model"],
        unique=True,
        sqlite_where=sa.text("active = 1"),
        postgresql_where=sa.text("active"),
    )
    op.create_index("ix_rollouts_model_created", "rollouts", ["model", "created_at"])
    op.create_table(
        "rollout_phases",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        *_rollout_fk(),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_phases"),
    )
    op.create_table(
        "rollout_analyses",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        *_rollout_fk(),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("span_start", UTCDateTime(), nullable=False),
        sa.Column("span_end", UTCDateTime(), nullable=False),
        sa.Column("check", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("value", _FLOAT, nullable=True),
        sa.Column("threshold", _FLOAT, nullable=False),
        sa.Column("n_canary", sa.BigInteger(), nullable=False),
        sa.Column("n_stable", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("analysed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_analyses"),
    )
    op.create_index("ix_rollout_analyses_rollout", "rollout_analyses", ["rollout_id", "step"])


def downgrade() -> None:
    op.drop_index("ix_rollout_analyses_rollout", table_name="rollout_analyses")
    op.drop_table("rollout_analyses")
    op.drop_table("rollout_phases")
    op.drop_index("ix_rollouts_model_created", table_name="rollouts")
    op.drop_index("uq_rollouts_active", table_name="rollouts")
    op.drop_table("rollouts")
