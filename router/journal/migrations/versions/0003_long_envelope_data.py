"""MySQL/MariaDB: envelope JSON in MEDIUMTEXT, so a document of many attachments fits as it does elsewhere.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        op.alter_column("envelope_data", "data", type_=mysql.MEDIUMTEXT(), existing_type=sa.Text(),
                        existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        op.alter_column("envelope_data", "data", type_=sa.Text(), existing_type=mysql.MEDIUMTEXT(),
                        existing_nullable=False)
