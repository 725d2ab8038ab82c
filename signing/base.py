"""The signing stage's slot: what the pipeline asks of a signer.

QES signing (PAdES on PDFs, XAdES/XML-DSig on XML, through a remote signing service or PKCS#11)
plugs in here as a signer kind (see :mod:`signing`). Signer objects of pyhanko/asn1crypto are not
thread-safe: the hub builds one set per processing worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from schemas.envelope import Envelope
from schemas.payloads import PayloadStore

__all__ = ["NoSigning", "SignResult", "Signer", "SignerKind"]


@dataclass(frozen=True)
class SignResult:
    envelope: Envelope  # the envelope, with signed attachments replacing the originals when signed
    outcome: str  # "ok" (signed) or "skipped"
    detail: str


class Signer(Protocol):
    def sign(self, envelope: Envelope, store: PayloadStore) -> SignResult:
        """Sign what policy says must be signed; raise Transient/Permanent from schemas.errors on failure.

        A :class:`~schemas.errors.Transient` error (the signing service is down or busy) is retried for
        that envelope alone, with the journal's back-off; a :class:`~schemas.errors.Permanent` one fails
        the envelope with its reason for an operator.
        """
        ...


class SignerKind(Protocol):
    """A kind named in ``signing.signers.<name>.kind``: its settings model, and a signer made from them.

    ``Settings`` is imported whenever the configuration is checked, so keep heavy imports (pyhanko,
    PKCS#11) inside the constructor.
    """

    Settings: ClassVar[type[BaseModel]]

    def __init__(self, name: str, settings: BaseModel) -> None: ...

    def sign(self, envelope: Envelope, store: PayloadStore) -> SignResult: ...


class _NoSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoSigning:
    """The default: no signing policy configured, documents pass unchanged (journaled as skipped)."""

    Settings: ClassVar[type[BaseModel]] = _NoSettings

    def __init__(self, name: str = "none", settings: BaseModel | None = None) -> None:
        self.name = name

    def sign(self, envelope: Envelope, store: PayloadStore) -> SignResult:
        return SignResult(envelope, "skipped", "no signing policy configured")
