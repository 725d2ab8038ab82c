"""SEOS evidence: each message sent or received, byte for byte, with the TLS peer's certificate.

Journaled by the SEOS connection as it sends or receives, in its own short transaction (the bytes are
the proof; the document's state is journaled beside, as for any adapter), and sealed with the stage
events (:mod:`router.journal.canonical`), so a changed byte of a stored message breaks the chain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select

from router.journal.base import JournalBase
from router.journal.columns import cut
from router.journal.records import aware
from router.journal.tables import wire_messages

__all__ = ["WireJournal", "WireRecord"]


@dataclass(frozen=True)
class WireRecord:
    """One SEOS message as it went over the wire."""

    envelope_id: str | None
    at: datetime
    direction: str  # "in" or "out"
    message_type: str
    message_guid: str | None
    connection: str
    peer: str
    data: bytes
    tls_certificate: bytes | None = None
    id: int | None = None  # the journal's, once recorded

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class WireJournal(JournalBase):
    def record_wire(self, record: WireRecord) -> int:
        """Journal one message sent or received; its id (its place in the sealed chain)."""
        if record.direction not in ("in", "out"):
            raise ValueError(f"direction must be 'in' or 'out', not {record.direction!r}")
        with self.engine.begin() as conn:
            result = conn.execute(insert(wire_messages).values(
                envelope_id=record.envelope_id, at=record.at, direction=record.direction,
                message_type=cut(record.message_type, 40), message_guid=record.message_guid,
                connection=record.connection, peer=cut(record.peer, 300), tls_certificate=record.tls_certificate,
                sha256=record.sha256, data=record.data))
            key = result.inserted_primary_key
            assert key is not None  # an INSERT of one row always has it
            return int(key[0])

    def wire(self, envelope_id: str) -> list[WireRecord]:
        """Every message sent and received for a document, in the order they were journaled."""
        c = wire_messages.c
        with self.engine.connect() as conn:
            rows = conn.execute(select(wire_messages).where(c.envelope_id == envelope_id).order_by(c.id)).all()
        return [WireRecord(r.envelope_id, aware(r.at) or r.at, r.direction, r.message_type, r.message_guid,
                           r.connection, r.peer, bytes(r.data),
                           bytes(r.tls_certificate) if r.tls_certificate is not None else None, int(r.id))
                for r in rows]
