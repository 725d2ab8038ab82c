"""What every part of the journal shares: the engine, who is writing, and how rows are made."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from router.journal.columns import fit_text
from router.journal.records import (
    StageEvent,
)
from schemas.envelope import Envelope, EnvelopeStatus, utcnow

__all__ = [
    "ENVELOPE_FIELDS",
    "JournalBase",
    "dump_and_fingerprint",
    "envelope_row",
    "fingerprint",
    "retry_at",
]

#: Columns of ``envelopes`` by the envelope's names for them, for refusals that name the field.
ENVELOPE_FIELDS = {
    "sender_eik": "sender.eik", "sender_guid": "sender.guid", "sender_name": "sender.name",
    "recipient_eik": "recipient.eik", "recipient_guid": "recipient.guid", "recipient_name": "recipient.name",
}


def fingerprint(envelope: Envelope) -> str:
    """SHA-256 of what the document *is* (not when or under which id it arrived)."""
    # pydantic writes fields in the model's order, so the same content always gives the same bytes.
    data = envelope.model_dump_json(exclude={"id", "status", "received_at"}, exclude_none=True)
    return hashlib.sha256(data.encode()).hexdigest()


def dump_and_fingerprint(envelope: Envelope) -> tuple[str, str]:
    """The envelope's JSON (as the journal keeps it) and its :func:`fingerprint`, from one dump.

    The fingerprint's JSON is the same dump without ``id`` (always first) and ``status``/``received_at``
    (always last): pydantic writes fields in the model's order, and a key can only appear unescaped as
    a key, so slicing gives the very bytes :func:`fingerprint` hashes, at half the cost on the intake path.
    """
    data = envelope.to_json()
    start, end = data.find(',"document_guid":'), data.rfind(',"status":')
    if not data.startswith('{"id":') or start < 0 or end < start:  # not the shape the slice assumes
        return data, fingerprint(envelope)
    return data, hashlib.sha256(("{" + data[start + 1:end] + "}").encode()).hexdigest()


class JournalBase:
    """The engine and the actor; the parts of the journal are mixins over this."""

    engine: Engine
    reader: Engine  # the same pool, autocommit: a one-statement look-up costs one round trip, not three
    actor: str

    # -- helpers --------------------------------------------------------------------------------
    def _event_rows(self, envelope_id: str, stage_events: Iterable[StageEvent], now: datetime) -> list[dict[str, Any]]:
        return [
            {"envelope_id": envelope_id, "at": now, "stage": e.stage, "outcome": e.outcome, "actor": self.actor,
             "destination": e.destination, "detail": fit_text(e.detail)}
            for e in stage_events
        ]


def envelope_row(env: Envelope, fp: str, status: EnvelopeStatus, now: datetime) -> dict[str, Any]:
    return {
        "id": env.id, "document_guid": env.document_guid, "parent_guid": env.parent_guid, "source": env.source,
        "fingerprint": fp, "sender_eik": env.sender.eik, "sender_guid": env.sender.guid,
        "sender_name": env.sender.name, "recipient_eik": env.recipient.eik, "recipient_guid": env.recipient.guid,
        "recipient_name": env.recipient.name, "kind": env.kind, "subject": env.subject,
        "reg_number": env.reg_number, "reg_date": env.reg_date, "procedure_code": env.procedure_code,
        "status": status.value, "error_code": None, "error": None,
        "created_at": now, "updated_at": now,
    }


def retry_at(attempt: int, first: float, maximum: float) -> datetime:
    """When to try a delivery again after ``attempt`` failed tries: exponential, capped."""
    delay = min(maximum, first * (2 ** max(0, attempt - 1)))
    return utcnow() + timedelta(seconds=delay)
