"""Where a signing key lives: a PKCS#12 file, a PKCS#11 token or HSM, or a remote CSC signing service.

Every format (PAdES, XAdES, CAdES, the SEOS XML-DSig) signs through a :class:`KeySource`, so any key
serves any format and only hashes leave Kurier for an HSM or a remote service. A key source hands out
a pyhanko :class:`~pyhanko.sign.signers.Signer` (CMS signatures: PAdES, CAdES) and signs raw data
(XML signatures). Key types are named in configuration (``signing.signers.<name>.key.type``) and
resolved lazily through the alias table below, like signer kinds: ``import signing`` loads no pyhanko,
no PKCS#11 library and no HTTP client.

Key source objects are not thread-safe (asn1crypto encodes lazily, a PKCS#11 session is one thread's):
each processing worker builds its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel

from signing.lazy import resolve

if TYPE_CHECKING:
    from asn1crypto import x509
    from pyhanko.sign.signers import Signer as PdfSigner

__all__ = ["KEY_TYPES", "KeySource", "KeyType", "load_key_type"]

#: key type → "module:Class" (a :class:`KeyType`).
KEY_TYPES: dict[str, str] = {
    "pkcs12": "signing.pkcs12:Pkcs12Key",
    "pkcs11": "signing.pkcs11:Pkcs11Key",
    "csc": "signing.csc:CscKey",
}


class KeySource(Protocol):
    """One signing key and its certificate chain."""

    name: str

    def certificate(self) -> x509.Certificate:
        """The signing certificate."""
        ...

    def chain(self) -> list[x509.Certificate]:
        """The certificates between the signing certificate and a trust anchor (intermediates), nearest first."""
        ...

    def pdf_signer(self) -> PdfSigner:
        """A pyhanko signer over this key, made once and kept (it holds the loaded key or the session)."""
        ...

    def sign_raw(self, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        """The raw signature value of ``data`` (PKCS#1 v1.5 for RSA, DER for ECDSA); only its hash leaves Kurier.

        Raises :class:`~schemas.errors.Transient` when an HSM or service is unreachable or busy,
        :class:`~schemas.errors.Permanent` when it refuses (a wrong PIN, a revoked credential).
        """
        ...

    def sign_hashes(self, digests: list[bytes], digest_algorithm: str = "sha256") -> list[bytes]:
        """Raw signatures of several precomputed digests: one call to a remote service for all of them."""
        ...

    def close(self) -> None: ...


class KeyType(Protocol):
    """A key type: its settings model and a key source made from them (heavy imports in the constructor)."""

    Settings: ClassVar[type[BaseModel]]

    def __init__(self, name: str, settings: BaseModel) -> None: ...


def load_key_type(kind: str) -> type[KeyType]:
    cls: type[KeyType] = resolve(KEY_TYPES, kind, f"unknown key type {kind!r}")
    return cls
