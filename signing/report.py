"""What validating one signature found: the report kept in the journal with the document.

Every validator (PAdES, XAdES, CAdES, the SEOS XML-DSig) returns one :class:`SignatureReport` per
signature it finds; a document with no signature where one was expected gets a report saying so.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SignatureReport", "SignatureStatus"]


class SignatureStatus(StrEnum):
    VALID = "valid"  # intact, trusted chain, not revoked at signing time
    INVALID = "invalid"  # the bytes were changed, or the signature value does not verify
    UNTRUSTED = "untrusted"  # intact, but no path to a configured trust anchor
    EXPIRED = "expired"  # the certificate was not valid at the signing time
    REVOKED = "revoked"  # revoked before the signing time
    INDETERMINATE = "indeterminate"  # could not decide (revocation data unreachable, ...)


class SignatureReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: str  # pades, xades, cades, xmldsig
    file_name: str | None = None  # the attachment (None: the SEOS message itself)
    status: SignatureStatus
    reason: str  # why, in a sentence an operator reads ("the document was changed after signing")
    signer: str | None = None  # the signing certificate's subject, as people read it
    signer_eik: str | None = None  # from organizationIdentifier NTRBG-<EIK>, when the certificate carries it
    signed_at: datetime | None = None  # the claimed signing time
    timestamp: datetime | None = None  # an RFC 3161 timestamp's time, when there is one
    chain: list[str] = Field(default_factory=list)  # subjects, signing certificate first
    weak: list[str] = Field(default_factory=list)  # e.g. "SHA-1 digest": accepted, but flagged
    level: str | None = None  # B-B, B-T, B-LT, when it can tell

    @property
    def ok(self) -> bool:
        return self.status is SignatureStatus.VALID
