"""The canonical envelope: the one model every stage and adapter speaks.

It mirrors what a SEOS ``DocumentRegistrationRequest`` carries (domain.md §3) so that the SEOS adapter
maps it field for field, and it keeps what legacy AIS have (their own registration number and date).
Attachments never travel inside: they are references (name, MIME type, size, SHA-256) into the
content-addressed payload store (claim check), so queue messages stay a few KB whatever the files weigh.

Fields the journal keeps in columns have the columns' lengths as limits (``max_length``), so a value
too long is refused when the envelope is made, the same on every database, naming the field and the
limit. An EIK has none here: the pipeline refuses a wrong one with ``invalid-eik``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.identifiers import normalize_guid

__all__ = [
    "TEXT_LIMIT",
    "AttachmentRef",
    "Correspondent",
    "CorrespondentKind",
    "Envelope",
    "EnvelopeStatus",
    "Party",
    "new_envelope_id",
    "utcnow",
]


#: Characters of a free text the journal keeps in a column (a subject): what MySQL's 64 KB TEXT holds
#: at 4 bytes a character. The other limits are the journal's column lengths (router/journal/tables.py).
TEXT_LIMIT = 16_000


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_envelope_id() -> str:
    return uuid.uuid4().hex


class EnvelopeStatus(StrEnum):
    """Where an envelope stands. Terminal: delivered, refused, failed, paper."""

    RECEIVED = "received"  # accepted, journaled, queued for processing
    ROUTED = "routed"  # transformed, signed, deliveries planned
    DELIVERED = "delivered"  # every planned delivery done
    REFUSED = "refused"  # rejected as input (malformed, invalid, unknown recipient): kept for an operator
    FAILED = "failed"  # a stage or a delivery failed permanently: kept for an operator
    PAPER = "paper"  # procedure not digitised: paper track (domain.md §7)

    @property
    def terminal(self) -> bool:
        return self in (EnvelopeStatus.DELIVERED, EnvelopeStatus.REFUSED, EnvelopeStatus.FAILED, EnvelopeStatus.PAPER)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Party(_Model):
    """A participant: an administration (EIK, SEOS GUID, name)."""

    eik: str | None = None
    guid: str | None = None
    name: str = Field("", max_length=500)

    @field_validator("guid")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        return normalize_guid(value) if value else None


class CorrespondentKind(StrEnum):
    APPLICANT = "Corr_Applicant"
    OTHER = "Corr_Other"


class Correspondent(_Model):
    """A person or organisation the document concerns (SEOS ``Corespondent``)."""

    name: str
    city: str = ""
    address: str | None = None
    egn: str | None = None
    id_card: str | None = None
    bulstat: str | None = None
    email: str | None = None
    phone: str | None = None
    mobile_phone: str | None = None
    mol: str | None = None
    comment: str | None = None
    kind: CorrespondentKind | None = None


class AttachmentRef(_Model):
    """A file of the document, by reference into the payload store."""

    file_name: str
    mime_type: str = "application/octet-stream"
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    comment: str | None = None


class Envelope(_Model):
    """One document on its way through Kurier.

    ``id`` is the correlation id: it is in every journal row, log line and queue message of the
    document. ``document_guid`` is the SEOS correlation key between administrations.
    """

    id: str = Field(default_factory=new_envelope_id, max_length=32)
    document_guid: str
    parent_guid: str | None = None
    source: str = Field("", max_length=64)  # the configured source (AIS connection) that handed the document in
    sender: Party = Field(default_factory=Party)
    recipient: Party = Field(default_factory=Party)
    kind: str = Field("", max_length=200)  # DocKind, free text ("Молба", "Заповед")
    subject: str = Field("", max_length=TEXT_LIMIT)  # DocAbout
    reg_number: str | None = Field(None, max_length=100)  # the AIS's own registration number, kept intact
    reg_date: date | None = None
    procedure_code: str | None = Field(None, max_length=100)  # DocService.ServiceCode
    service_name: str | None = None
    comment: str | None = None
    deadline: date | None = None  # DocReqDateClose
    correspondents: list[Correspondent] = Field(default_factory=list)
    attachments: list[AttachmentRef] = Field(default_factory=list)
    status: EnvelopeStatus = EnvelopeStatus.RECEIVED
    received_at: datetime = Field(default_factory=utcnow)

    @field_validator("document_guid", "parent_guid")
    @classmethod
    def _guids(cls, value: str | None) -> str | None:
        return normalize_guid(value) if value else None

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, data: str | bytes) -> Envelope:
        return cls.model_validate_json(data)
