"""narrow sketch counts: window rows store histogram counts as narrow as they fit

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

from db.migrations.sketch_rows import as_format_3, rewrite_sketches

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows of format 3 stay readable; a flush that adds to one rewrites it in format 4.
    pass


def downgrade() -> None:
    # Earlier revisions' code reads formats 1-3 only: every row written in format 4
    # is rewritten in format 3, batch by batch.
    rewrite_sketches(op.get_bind(), as_format_3)
