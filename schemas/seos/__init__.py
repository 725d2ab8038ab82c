"""SEOS messages (domain.md §3): the typed ``Message``, writing and reading it, and the envelope mapping."""

from schemas.seos.mapping import envelope_from_message, message_from_envelope
from schemas.seos.model import (
    DURI_NS,
    SEOS_NS,
    Body,
    DocService,
    DocStatus,
    Document,
    DocumentId,
    DocumentNumber,
    DocumentRegistrationRequest,
    DocumentStatusRequest,
    DocumentStatusResponse,
    DocumentURI,
    Entity,
    Error,
    ErrorType,
    Header,
    Message,
    MessageType,
)
from schemas.seos.parse import parse_message, read_message
from schemas.seos.writer import build_message, write_message

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
    "build_message",
    "envelope_from_message",
    "message_from_envelope",
    "parse_message",
    "read_message",
    "write_message",
]
