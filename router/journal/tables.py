"""The journal's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# MySQL/MariaDB's TEXT holds 64 KB; an envelope of 500 attachments takes more (its JSON is ~200 B an
# attachment), which PostgreSQL and SQLite hold: MEDIUMTEXT (16 MB) there, so every database takes it.
_LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

# A seal block's row hashes, 32 bytes a row: BLOB on MySQL/MariaDB holds only 64 KB (2,000 rows).
_LongBlob = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

# SQLite only auto-increments a plain INTEGER PRIMARY KEY.
_BigId = BigInteger().with_variant(Integer(), "sqlite")

envelopes = Table(
    "envelopes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("document_guid", String(38), nullable=False),
    Column("parent_guid", String(38)),
    Column("source", String(64), nullable=False),
    Column("fingerprint", String(64)),  # SHA-256 of the document's content: tells a resend from a clash
    Column("sender_eik", String(13)),
    Column("sender_guid", String(38)),
    Column("sender_name", String(500)),
    Column("recipient_eik", String(13)),
    Column("recipient_guid", String(38)),
    Column("recipient_name", String(500)),
    Column("kind", String(200)),
    Column("subject", Text),
    Column("reg_number", String(100)),
    Column("reg_date", Date),
    Column("procedure_code", String(100)),
    Column("status", String(16), nullable=False),
    Column("error_code", String(50)),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # document_guid first: the same index answers "this GUID from any source" (operators, SEOS replies).
    UniqueConstraint("document_guid", "source", name="uq_envelopes_document_source"),
    Index("ix_envelopes_status_updated", "status", "updated_at"),
    Index("ix_envelopes_reg_number", "reg_number"),
    Index("ix_envelopes_sender_eik", "sender_eik"),
    Index("ix_envelopes_recipient_eik", "recipient_eik"),
    Index("ix_envelopes_created", "created_at"),
)

# The whole canonical envelope as JSON, apart from the envelopes row: written once (again only when a
# transform changes the document), so the frequent status updates of ``envelopes`` copy a narrow row.
envelope_data = Table(
    "envelope_data",
    metadata,
    Column("envelope_id", String(32), primary_key=True),
    Column("data", _LongText, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("envelope_id", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("stage", String(20), nullable=False),  # receive, validate, transform, sign, route, deliver, ...
    Column("outcome", String(16), nullable=False),  # ok, skipped, refused, failed, retry, duplicate
    Column("actor", String(120), nullable=False),  # which node/adapter did it
    Column("destination", String(64)),
    Column("detail", Text),
    Index("ix_events_envelope", "envelope_id", "id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", String(100), primary_key=True),  # <envelope id>:<destination>, the idempotency key
    Column("envelope_id", String(32), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending, retry, delivered, failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("receipt", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_deliveries_envelope", "envelope_id"),
    Index("ix_deliveries_status_next", "status", "next_try"),
)

# Statuses per recipient (schemas.status): one row per change, the history a source is told of.
# ``source`` is the envelope's, copied here so the notifier finds a source's untold changes through one
# index, without a join; a source that is no configured connection (a bench, a test) is never read.
status_changes = Table(
    "status_changes",
    metadata,
    Column("seq", _BigId, primary_key=True, autoincrement=True),  # the order of changes; sources dedupe by it
    Column("envelope_id", String(32), nullable=False),
    Column("source", String(64), nullable=False),  # the connection that submitted the document: to be told
    Column("destination", String(64)),  # the recipient's connection; NULL before routing (accepted)
    Column("status", String(24), nullable=False),  # a RecipientStatus value
    Column("reg_number", String(100)),  # the recipient's registration number and date (registered)
    Column("reg_date", Date),
    Column("reason", Text),  # why rejected, stopped or failed
    Column("at", DateTime(timezone=True), nullable=False),  # when it happened (a report: when the peer said so)
    Column("actor", String(120), nullable=False),  # the node that recorded it, or the connection that reported it
    Column("told_at", DateTime(timezone=True)),  # when the source was told; NULL: not yet
    Column("tell_error", Text),  # set with told_at when telling failed for good: why the source never heard
    Index("ix_status_changes_envelope", "envelope_id", "seq"),
    Index("ix_status_changes_untold", "source", "told_at", "seq"),
)

# The sealed journal (router.journal.seal): blocks of hash-chained evidence rows, written by the sealer
# after the rows are committed, so writers never wait on a chain head. ``block`` is assigned, not
# auto-incremented: two sealers racing for the same block collide on the key and one starts over.
journal_seals = Table(
    "journal_seals",
    metadata,
    Column("block", _BigId, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("prev_head", String(64), nullable=False),  # hex SHA-256; the first block's is all zeros
    Column("head", String(64), nullable=False),  # SHA-256(prev_head || meta || row hashes), hex
    Column("row_count", Integer, nullable=False),
    # JSON: the rows covered (table -> id ranges), the gaps closed for good, the sealer's state after it.
    Column("meta", _LongText, nullable=False),
    Column("row_hashes", _LongBlob, nullable=False),  # 32 bytes a covered row, in the order of ``meta``
    Column("tsa_token", _LongBlob),  # an RFC 3161 token over the head (DER), added at intervals
    Column("tsa_at", DateTime(timezone=True)),  # the token's time, for the operator; verify reads the token
)

# SEOS evidence (issue 6): the exact bytes of every message sent and received, with the TLS peer's
# certificate, sealed like the events. ``envelope_id`` is NULL for a message no document could be found
# for (a status request about an unknown document, a message refused before it was read).
wire_messages = Table(
    "wire_messages",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("envelope_id", String(32)),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("direction", String(3), nullable=False),  # in, out
    Column("message_type", String(40), nullable=False),  # MSG_DocumentRegistrationRequest, ...
    Column("message_guid", String(38)),
    Column("connection", String(64), nullable=False),  # the SEOS connection it went through
    Column("peer", String(300), nullable=False),  # the peer's URL (out) or address (in)
    Column("tls_certificate", _LongBlob),  # the TLS peer's certificate, DER
    Column("sha256", String(64), nullable=False),  # of ``data``
    Column("data", _LongBlob, nullable=False),  # the signed Message XML, byte for byte
    Index("ix_wire_messages_envelope", "envelope_id", "id"),
    Index("ix_wire_messages_guid", "message_guid"),
)
