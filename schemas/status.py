"""Statuses per recipient: where a document stands at each administration it was sent to.

A document has one status per recipient (per delivery): Kurier sets the first ones (accepted, queued,
delivered, failed, paper original required), and a destination reports the later ones it learns from
its peer, often hours afterwards (a SEOS participant registers the document with its own number,
rejects it with a reason, closes it; a mailbox table's status columns change). Every change is kept
in the journal as history, and the source that submitted the document is told of it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.envelope import utcnow
from schemas.identifiers import normalize_guid

__all__ = ["REPORTABLE", "SEOS_CODES", "RecipientStatus", "StatusChange", "StatusReport"]


class RecipientStatus(StrEnum):
    """A document's status at one recipient, as the SEOS statuses (domain.md §3) and legacy AIS know them."""

    ACCEPTED = "accepted"  # Kurier took it in (journaled); recipients not decided yet
    QUEUED = "queued"  # routed: a delivery to this recipient is planned and queued
    DELIVERED = "delivered"  # handed over to the recipient's system
    AWAITING_REGISTRATION = "awaiting-registration"  # the recipient has it, not registered yet (DS_WAIT_REGISTRATION)
    REGISTERED = "registered"  # registered by the recipient, with its number and date (DS_REGISTERED)
    REJECTED = "rejected"  # refused by the recipient, with a reason (DS_REJECTED)
    CLOSED = "closed"  # the recipient closed the case (DS_CLOSED)
    STOPPED = "stopped"  # the recipient stopped handling it (DS_STOPPED)
    FAILED = "failed"  # Kurier could not deliver it (gave up, or a permanent refusal)
    PAPER_REQUIRED = "paper-required"  # procedure not digitised: a paper original is required (domain.md §7)

    @property
    def label(self) -> str:
        """Bulgarian / English, for operators and AIS users."""
        return _LABELS[self]

    @classmethod
    def parse(cls, text: str) -> RecipientStatus:
        """Our code (``registered``) or the SEOS one (``DS_REGISTERED``), any case; ValueError naming both."""
        value = text.strip()
        by_seos = SEOS_CODES.get(value.upper())
        if by_seos is not None:
            return by_seos
        try:
            return cls(value.lower())
        except ValueError:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown status {text!r}; known: {known} (or the SEOS codes "
                             f"{', '.join(sorted(SEOS_CODES))})") from None


_LABELS = {
    RecipientStatus.ACCEPTED: "Приет / Accepted",
    RecipientStatus.QUEUED: "В опашка / Queued",
    RecipientStatus.DELIVERED: "Доставен / Delivered",
    RecipientStatus.AWAITING_REGISTRATION: "Чака регистрация / Awaiting registration",
    RecipientStatus.REGISTERED: "Регистриран / Registered",
    RecipientStatus.REJECTED: "Отказан / Rejected",
    RecipientStatus.CLOSED: "Приключен / Closed",
    RecipientStatus.STOPPED: "Спрян / Stopped",
    RecipientStatus.FAILED: "Неуспешна доставка / Delivery failed",
    RecipientStatus.PAPER_REQUIRED: "Изисква се оригинал на хартия / Paper original required",
}

#: SEOS ``DocRegStatus`` codes (domain.md §3) as statuses. DS_NOT_FOUND and DS_ALREADY_RECEIVED are answers
#: about a request, not a document's status, and are not here.
SEOS_CODES = {
    "DS_WAIT_REGISTRATION": RecipientStatus.AWAITING_REGISTRATION,
    "DS_REGISTERED": RecipientStatus.REGISTERED,
    "DS_REJECTED": RecipientStatus.REJECTED,
    "DS_CLOSED": RecipientStatus.CLOSED,
    "DS_STOPPED": RecipientStatus.STOPPED,
}

#: Statuses only a recipient can report (Kurier sets the others itself).
REPORTABLE = frozenset({
    RecipientStatus.AWAITING_REGISTRATION, RecipientStatus.REGISTERED, RecipientStatus.REJECTED,
    RecipientStatus.CLOSED, RecipientStatus.STOPPED,
})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class StatusReport(_Model):
    """What a destination learned from its peer about a document it delivered there."""

    document_guid: str
    status: RecipientStatus
    reg_number: str | None = Field(None, max_length=100)  # the recipient's own registration number
    reg_date: date | None = None
    reason: str | None = Field(None, max_length=4000)  # why it was rejected or stopped
    at: datetime = Field(default_factory=utcnow)

    @field_validator("document_guid")
    @classmethod
    def _guid(cls, value: str) -> str:
        return normalize_guid(value)

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # a time without a zone is UTC

    @field_validator("status")
    @classmethod
    def _reportable(cls, value: RecipientStatus) -> RecipientStatus:
        if value not in REPORTABLE:
            raise ValueError(f"a recipient cannot report {value.value!r}; it may report "
                             f"{', '.join(sorted(s.value for s in REPORTABLE))}")
        return value


class StatusChange(_Model):
    """One entry of a document's status history at one recipient: what the submitting source is told."""

    seq: int  # the journal's number of this change: unique and increasing; an adapter tells each seq once
    envelope_id: str
    document_guid: str
    source: str  # the connection that submitted the document, to be told
    source_reg_number: str | None = None  # the submitting AIS's own registration number of the document
    destination: str | None  # the recipient's connection; None for statuses before routing (accepted)
    recipient_eik: str | None = None  # the addressee of the document, as the source wrote it
    recipient_name: str | None = None
    status: RecipientStatus
    reg_number: str | None = None  # the recipient's registration number (registered)
    reg_date: date | None = None
    reason: str | None = None  # why it was rejected, stopped or failed
    at: datetime

    @property
    def label(self) -> str:
        return self.status.label
