"""The journal's records: what its write methods take and its read methods return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from router.journal.tables import envelopes
from schemas.envelope import EnvelopeStatus
from schemas.status import RecipientStatus

__all__ = [
    "AcceptOutcome",
    "DeliveryOutcome",
    "DeliveryRecord",
    "DeliveryState",
    "EventRecord",
    "MessageDetail",
    "MessageSummary",
    "PlanOutcome",
    "StageEvent",
    "StatusRecord",
    "current_statuses",
]


def aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # SQLite hands back naive datetimes; we only ever store UTC
    return value


@dataclass(frozen=True)
class StageEvent:
    stage: str
    outcome: str
    detail: str | None = None
    destination: str | None = None


@dataclass(frozen=True)
class AcceptOutcome:
    envelope_id: str
    duplicate: bool = False  # the same document (same fingerprint) was accepted before
    conflict: bool = False  # the same DocumentGUID from this source, but different content
    status: str = EnvelopeStatus.RECEIVED.value


@dataclass
class PlanOutcome:
    """What the processing stage decided for one envelope."""

    envelope_id: str
    status: EnvelopeStatus  # ROUTED, FAILED, PAPER
    events: list[StageEvent]
    destinations: list[str] = field(default_factory=list)
    error_code: str | None = None
    error: str | None = None
    data: str | None = None  # the envelope JSON when a stage changed it (e.g. a transform added a file)
    source: str = ""  # the envelope's source, for its status rows (looked up by the journal when not given)


@dataclass(frozen=True)
class DeliveryOutcome:
    delivery_id: str
    envelope_id: str
    destination: str
    status: str  # delivered, retry, failed
    detail: str
    next_try: datetime | None = None
    source: str = ""  # the envelope's source, for its status rows (looked up by the journal when not given)
    # The envelope's only delivery (as the journal said before delivering): its outcome settles the
    # envelope, with no look-up of other deliveries. False: the journal looks.
    only: bool = False


@dataclass(frozen=True)
class DeliveryState:
    """A delivery as the journal has it, before a worker tries it."""

    status: str  # pending, retry, delivered, failed
    attempts: int
    siblings: int  # deliveries of its envelope, itself included


@dataclass(frozen=True)
class EventRecord:
    at: datetime
    stage: str
    outcome: str
    actor: str
    destination: str | None
    detail: str | None


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    destination: str
    status: str
    attempts: int
    next_try: datetime | None
    last_error: str | None
    receipt: str | None
    updated_at: datetime


@dataclass(frozen=True)
class MessageSummary:
    id: str
    document_guid: str
    source: str
    sender_eik: str | None
    sender_name: str | None
    recipient_eik: str | None
    recipient_name: str | None
    kind: str | None
    subject: str | None
    reg_number: str | None
    status: str
    error: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class StatusRecord:
    """One entry of a document's status history at one recipient (``destination`` None: before routing)."""

    seq: int
    at: datetime
    destination: str | None
    status: RecipientStatus
    label: str  # Bulgarian / English
    reg_number: str | None  # the recipient's registration number and date
    reg_date: date | None
    reason: str | None
    actor: str
    told_at: datetime | None  # when the submitting source was told; None: not yet
    tell_error: str | None  # why the source could not be told, when it never will be

    @property
    def told(self) -> bool:
        return self.told_at is not None and self.tell_error is None


def current_statuses(history: list[StatusRecord]) -> list[StatusRecord]:
    """The latest status per recipient; the entry before routing only while there is no recipient yet."""
    latest: dict[str | None, StatusRecord] = {}
    for record in sorted(history, key=lambda r: r.seq):
        latest[record.destination] = record
    if len(latest) > 1:
        latest.pop(None, None)  # "accepted" is superseded by each recipient's own status
    return sorted(latest.values(), key=lambda r: (r.destination or "", r.seq))


@dataclass(frozen=True)
class MessageDetail:
    summary: MessageSummary
    envelope: dict[str, Any]
    events: list[EventRecord]
    deliveries: list[DeliveryRecord]
    statuses: list[StatusRecord] = field(default_factory=list)  # the whole history, oldest first
    current: list[StatusRecord] = field(default_factory=list)  # where it stands at each recipient now


SUMMARY_COLUMNS = [
    envelopes.c.id, envelopes.c.document_guid, envelopes.c.source, envelopes.c.sender_eik,
    envelopes.c.sender_name, envelopes.c.recipient_eik, envelopes.c.recipient_name, envelopes.c.kind,
    envelopes.c.subject, envelopes.c.reg_number, envelopes.c.status, envelopes.c.error,
    envelopes.c.created_at, envelopes.c.updated_at,
]


def summary(row: Any) -> MessageSummary:
    values = dict(row._mapping)
    values["created_at"] = aware(values["created_at"])
    values["updated_at"] = aware(values["updated_at"])
    return MessageSummary(**values)


def summary_from_mapping(mapping: dict[str, Any]) -> MessageSummary:
    mapping["created_at"] = aware(mapping["created_at"])
    mapping["updated_at"] = aware(mapping["updated_at"])
    return MessageSummary(**mapping)
