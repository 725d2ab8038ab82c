"""The signing stage's slot: what the pipeline asks of a signer.

QES signing (PAdES on PDFs, XAdES/XML-DSig on XML, through a remote signing service or PKCS#11)
plugs in here. Signer objects of pyhanko/asn1crypto are not thread-safe: make one per worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.envelope import Envelope
from schemas.payloads import PayloadStore

__all__ = ["NoSigning", "SignResult", "Signer"]


@dataclass(frozen=True)
class SignResult:
    envelope: Envelope  # the envelope, with signed attachments replacing the originals when signed
    outcome: str  # "ok" (signed) or "skipped"
    detail: str


class Signer(Protocol):
    def sign(self, envelope: Envelope, store: PayloadStore) -> SignResult:
        """Sign what policy says must be signed; raise Transient/Permanent from schemas.errors on failure."""
        ...


class NoSigning:
    """The default: no signing policy configured, documents pass unchanged (journaled as skipped)."""

    def sign(self, envelope: Envelope, store: PayloadStore) -> SignResult:
        return SignResult(envelope, "skipped", "no signing policy configured")
