"""Key type ``pkcs12``: a signing key and its certificates in a PKCS#12 (.p12/.pfx) file.

The file is read and decrypted once, when the key source is made; the private key stays loaded for
the object's life. pyhanko's own ``SimpleSigner`` parses the key from DER again for every signature
(and does a trial signature to size the CMS): that is most of what plain ``sign_pdf`` costs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from schemas.errors import ConfigError

if TYPE_CHECKING:
    from asn1crypto import x509
    from pyhanko.sign.signers import Signer as PdfSigner

    from signing.keys import KeySource

__all__ = ["Pkcs12Key", "Settings"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    password_env: str | None = None  # the environment variable holding the password
    password_file: Path | None = None  # or a file holding it (first line), readable by Kurier only

    @model_validator(mode="after")
    def _one_password(self) -> Settings:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    def password(self) -> bytes | None:
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"PKCS#12 {self.path}: the environment variable {self.password_env} is not set")
            return value.encode()
        if self.password_file:
            try:
                return self.password_file.read_text(encoding="utf-8").splitlines()[0].encode()
            except (OSError, IndexError) as exc:
                raise ConfigError(f"PKCS#12 {self.path}: cannot read the password file {self.password_file}") from exc
        return None


def _kept_key_signer(cls: Any) -> Any:
    """A pyhanko SimpleSigner subclass that signs with an already loaded pyca key (built lazily: pyhanko)."""

    class KeptKeySigner(cls):
        def __init__(self, pyca_key: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._pyca_key = pyca_key

        def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
            return _sign(self._pyca_key, data, digest_algorithm)

    return KeptKeySigner


def _sign(key: Any, data: bytes, digest_algorithm: str, prehashed: bool = False) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    algorithm: Any = getattr(hashes, digest_algorithm.upper())()
    if prehashed:
        algorithm = utils.Prehashed(algorithm)
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(algorithm))
    raise ConfigError(f"unsupported key type {type(key).__name__} (RSA and ECDSA keys are supported)")


class Pkcs12Key:
    """A :class:`signing.keys.KeySource` over a PKCS#12 file."""

    Settings: ClassVar[type[BaseModel]] = Settings

    def __init__(self, name: str, settings: BaseModel) -> None:
        assert isinstance(settings, Settings)
        from asn1crypto import x509 as asn1_x509
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

        self.name = name
        self.settings = settings
        try:
            data = settings.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"signer {name!r}: cannot read the PKCS#12 file {settings.path}: {exc.strerror}") from exc
        try:
            key, cert, others = pkcs12.load_key_and_certificates(data, settings.password())
        except ValueError as exc:  # the message names no secret: "Invalid password or PKCS12 data"
            raise ConfigError(f"signer {name!r}: cannot open {settings.path} (wrong password?)") from exc
        if key is None or cert is None:
            raise ConfigError(f"signer {name!r}: {settings.path} holds no private key with its certificate")
        self._key = key
        self._cert = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))
        extra = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in others]
        self._chain = _path(self._cert, [c for c in extra if not c.self_issued])
        self._roots = [c for c in extra if c.self_issued]
        self._pdf_signer: PdfSigner | None = None

    def certificate(self) -> x509.Certificate:
        return self._cert

    def chain(self) -> list[x509.Certificate]:
        return list(self._chain)

    def roots(self) -> list[x509.Certificate]:
        """Self-signed certificates the file also carries (not trusted for that: only offered)."""
        return list(self._roots)

    def pdf_signer(self) -> PdfSigner:
        if self._pdf_signer is None:
            from pyhanko.sign.signers import SimpleSigner
            from pyhanko_certvalidator.registry import SimpleCertificateStore

            store = SimpleCertificateStore()
            store.register_multiple(self._chain)
            signer_cls = _kept_key_signer(SimpleSigner)
            self._pdf_signer = signer_cls(self._key, signing_cert=self._cert, signing_key=None,
                                          cert_registry=store)
        return self._pdf_signer

    def sign_raw(self, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        return _sign(self._key, data, digest_algorithm)

    def sign_hashes(self, digests: list[bytes], digest_algorithm: str = "sha256") -> list[bytes]:
        return [_sign(self._key, d, digest_algorithm, prehashed=True) for d in digests]

    def close(self) -> None:
        self._pdf_signer = None


def _path(cert: x509.Certificate, pool: list[x509.Certificate]) -> list[x509.Certificate]:
    """The intermediates from ``cert`` up, nearest first (issuer by name)."""
    out: list[x509.Certificate] = []
    current = cert
    while True:
        issuer = next((c for c in pool if c.subject == current.issuer and c not in out), None)
        if issuer is None:
            return out
        out.append(issuer)
        current = issuer


if TYPE_CHECKING:  # mypy checks that Pkcs12Key is a KeySource

    def _is_key_source(key: Pkcs12Key) -> KeySource:
        return key
