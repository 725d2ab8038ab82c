"""Kurier's canonical data: the envelope, identifiers, and the XML schemas adapters validate against."""

from schemas.envelope import (
    AttachmentRef,
    Correspondent,
    CorrespondentKind,
    Envelope,
    EnvelopeStatus,
    Party,
    new_envelope_id,
    utcnow,
)
from schemas.identifiers import InvalidIdentifier, eik_is_valid, new_guid, normalize_guid, validate_eik

__all__ = [
    "AttachmentRef",
    "Correspondent",
    "CorrespondentKind",
    "Envelope",
    "EnvelopeStatus",
    "InvalidIdentifier",
    "Party",
    "eik_is_valid",
    "new_envelope_id",
    "new_guid",
    "normalize_guid",
    "utcnow",
    "validate_eik",
]
