"""The SEOS ``Message`` as typed data (domain.md §3, "Envelope"): the header and the four bodies.

Field for field what the official schema (EGovMessaging.xsd) carries, in its order, with Python names.
GUIDs are normalised on the way in (``{lowercase}``), so a peer's upper-case GUID compares equal to
ours. Correspondents and attachments are the canonical envelope's own models: SEOS ``Corespondent`` and
``Attachment`` mirror them one to one, and an attachment's body lives in the payload store (claim
check), never in the model.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.envelope import AttachmentRef, Correspondent
from schemas.identifiers import normalize_guid

__all__ = [
    "DURI_NS",
    "SEOS_NS",
    "Body",
    "DocService",
    "DocStatus",
    "Document",
    "DocumentId",
    "DocumentNumber",
    "DocumentRegistrationRequest",
    "DocumentStatusRequest",
    "DocumentStatusResponse",
    "DocumentURI",
    "Entity",
    "Error",
    "ErrorType",
    "Header",
    "Message",
    "MessageType",
]

SEOS_NS = "http://schemas.egov.bg/messaging/v1"
DURI_NS = "http://ereg.egov.bg/segment/0009-000001"  # the children of DocumentURI are in this namespace


class MessageType(StrEnum):
    REGISTRATION_REQUEST = "MSG_DocumentRegistrationRequest"
    STATUS_RESPONSE = "MSG_DocumentStatusResponse"
    STATUS_REQUEST = "MSG_DocumentStatusRequest"
    ERROR = "MSG_Error"


class DocStatus(StrEnum):
    """``DocRegStatus``: where a document stands at its receiver."""

    WAIT_REGISTRATION = "DS_WAIT_REGISTRATION"
    REGISTERED = "DS_REGISTERED"
    STOPPED = "DS_STOPPED"
    CLOSED = "DS_CLOSED"
    NOT_FOUND = "DS_NOT_FOUND"
    ALREADY_RECEIVED = "DS_ALREADY_RECEIVED"
    REJECTED = "DS_REJECTED"


class ErrorType(StrEnum):
    INTERNAL = "ERR_INTERNAL"  # the answering side's own failure (its database is down)
    EXTERNAL = "ERR_EXTERNAL"  # the message's fault (wrong format, unknown sender, bad signature)


class _Model(BaseModel):
    # Stripped as the envelope's are (and as the reader reads xsd:string), so a message reads back equal.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Entity(_Model):
    """A participant in the exchange (``Sender``/``Recipient``): EIK/BULSTAT, name, SEOS GUID."""

    identifier: str
    name: str
    guid: str

    @field_validator("guid")
    @classmethod
    def _norm(cls, value: str) -> str:
        return normalize_guid(value)


class DocumentNumber(_Model):
    """The registration number and date a registry gave the document (``DocNumber``, ``DocDate``)."""

    number: str
    doc_date: date


class DocumentURI(_Model):
    """A register URI (segment 0009-000001): register index, sequence number, date, each optional."""

    register_index: int | None = Field(None, ge=1)
    sequence_number: int | None = Field(None, ge=1)
    receipt_or_signing_date: date | None = None


class DocumentId(_Model):
    """``DocID`` / ``DocParentID``: optionally a number or a register URI, then the ``DocumentGUID``."""

    guid: str
    number: DocumentNumber | DocumentURI | None = None

    @field_validator("guid")
    @classmethod
    def _norm(cls, value: str) -> str:
        return normalize_guid(value)


class DocService(_Model):
    """The administrative service the document is for (``ServiceName``, ``ServiceType``, ``ServiceCode``)."""

    name: str
    type: str
    code: str


class Document(_Model):
    """The ``Document`` of a registration request (its attachments are payload-store references)."""

    doc_id: DocumentId
    parent_id: DocumentId | None = None
    kind: str  # DocKind, free text ("Молба", "Заповед")
    correspondents: list[Correspondent] = Field(default_factory=list)
    attachments: list[AttachmentRef] = Field(default_factory=list)
    about: str | None = None
    service: DocService | None = None
    comment: str | None = None
    req_date_close: date | None = None
    attention_to: str | None = None


class DocumentRegistrationRequest(_Model):
    document: Document
    comment: str  # Comment: about the sending, required by the schema (may be empty)


class DocumentStatusRequest(_Model):
    doc_id: DocumentId


class DocumentStatusResponse(_Model):
    doc_id: DocumentId  # with the receiver's own number once registered
    status: DocStatus
    rejection_reason: str | None = None
    expect_close_date: date | None = None


class Error(_Model):
    """``MSG_Error``: why a message was refused, with the refused message's GUID when known."""

    error_type: ErrorType
    description: str
    message_guid: str | None = None

    @field_validator("message_guid")
    @classmethod
    def _norm(cls, value: str | None) -> str | None:
        return normalize_guid(value) if value is not None else None


Body = DocumentRegistrationRequest | DocumentStatusRequest | DocumentStatusResponse | Error

#: Each body's element name in ``Body`` and its ``MessageType``.
BODY_TYPES: dict[type[_Model], tuple[str, MessageType]] = {
    DocumentRegistrationRequest: ("DocumentRegistrationRequest", MessageType.REGISTRATION_REQUEST),
    DocumentStatusRequest: ("DocumentStatusRequest", MessageType.STATUS_REQUEST),
    DocumentStatusResponse: ("DocumentStatusResponse", MessageType.STATUS_RESPONSE),
    Error: ("Error", MessageType.ERROR),
}


class Header(_Model):
    """``Header`` less ``Version`` (always "1" out, "1" or "1.0" in) and ``MessageType`` (the body's)."""

    message_date: datetime
    sender: Entity
    recipient: Entity
    message_guid: str

    @field_validator("message_guid")
    @classmethod
    def _norm(cls, value: str | None) -> str | None:
        return normalize_guid(value) if value is not None else None


class Message(_Model):
    """One SEOS message; its ``MessageType`` follows from the body."""

    header: Header
    body: Body

    @property
    def message_type(self) -> MessageType:
        return BODY_TYPES[type(self.body)][1]
