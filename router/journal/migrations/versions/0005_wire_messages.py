"""SEOS evidence: the exact bytes of each message sent and received, with the TLS peer's certificate.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_LongBlob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "wire_messages",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("envelope_id", sa.String(32)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("message_type", sa.String(40), nullable=False),
        sa.Column("message_guid", sa.String(38)),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("peer", sa.String(300), nullable=False),
        sa.Column("tls_certificate", _LongBlob),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", _LongBlob, nullable=False),
    )
    op.create_index("ix_wire_messages_envelope", "wire_messages", ["envelope_id", "id"])
    op.create_index("ix_wire_messages_guid", "wire_messages", ["message_guid"])


def downgrade() -> None:
    op.drop_table("wire_messages")
