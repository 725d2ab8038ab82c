"""The journal's first schema: envelopes (and their JSON apart), events, deliveries.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "envelopes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("document_guid", sa.String(38), nullable=False),
        sa.Column("parent_guid", sa.String(38)),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("sender_eik", sa.String(13)),
        sa.Column("sender_guid", sa.String(38)),
        sa.Column("sender_name", sa.String(500)),
        sa.Column("recipient_eik", sa.String(13)),
        sa.Column("recipient_guid", sa.String(38)),
        sa.Column("recipient_name", sa.String(500)),
        sa.Column("kind", sa.String(200)),
        sa.Column("subject", sa.Text),
        sa.Column("reg_number", sa.String(100)),
        sa.Column("reg_date", sa.Date),
        sa.Column("procedure_code", sa.String(100)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(50)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("document_guid", "source", name="uq_envelopes_document_source"),
    )
    op.create_table(
        "envelope_data",
        sa.Column("envelope_id", sa.String(32), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_index("ix_envelopes_status_updated", "envelopes", ["status", "updated_at"])
    op.create_index("ix_envelopes_reg_number", "envelopes", ["reg_number"])
    op.create_index("ix_envelopes_sender_eik", "envelopes", ["sender_eik"])
    op.create_index("ix_envelopes_recipient_eik", "envelopes", ["recipient_eik"])
    op.create_index("ix_envelopes_created", "envelopes", ["created_at"])
    op.create_table(
        "events",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("envelope_id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("destination", sa.String(64)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_events_envelope", "events", ["envelope_id", "id"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("envelope_id", sa.String(32), nullable=False),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_try", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("receipt", sa.Text),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_deliveries_envelope", "deliveries", ["envelope_id"])
    op.create_index("ix_deliveries_status_next", "deliveries", ["status", "next_try"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("events")
    op.drop_table("envelope_data")
    op.drop_table("envelopes")
