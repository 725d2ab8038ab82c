"""The sealed journal: blocks of hash-chained evidence rows, their heads timestamped at intervals.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
_LongBlob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "journal_seals",
        sa.Column("block", _BigId, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prev_head", sa.String(64), nullable=False),
        sa.Column("head", sa.String(64), nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("meta", _LongText, nullable=False),
        sa.Column("row_hashes", _LongBlob, nullable=False),
        sa.Column("tsa_token", _LongBlob),
        sa.Column("tsa_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("journal_seals")
