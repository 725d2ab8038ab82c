"""Statuses per recipient: the history of each document's status at each recipient, and who was told.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "status_changes",
        sa.Column("seq", _BigId, primary_key=True, autoincrement=True),
        sa.Column("envelope_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(64)),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("reg_number", sa.String(100)),
        sa.Column("reg_date", sa.Date),
        sa.Column("reason", sa.Text),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("told_at", sa.DateTime(timezone=True)),
        sa.Column("tell_error", sa.Text),
    )
    op.create_index("ix_status_changes_envelope", "status_changes", ["envelope_id", "seq"])
    op.create_index("ix_status_changes_untold", "status_changes", ["source", "told_at", "seq"])


def downgrade() -> None:
    op.drop_table("status_changes")
