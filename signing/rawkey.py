"""Any :class:`~signing.keys.KeySource` as a ``cryptography`` private key, so signxml signs with it.

signxml asks a private key object for ``sign(data, padding, algorithm)`` (RSA) or
``sign(data, ECDSA(algorithm))`` and for its public key; nothing else. :func:`as_private_key` gives it an
object of cryptography's own abstract key classes whose ``sign`` hands the bytes to
``KeySource.sign_raw``: a key in an HSM or a remote service signs XML without ever leaving it (only the
hash leaves Kurier, the key source computes it). Everything that would need the private key itself
(numbers, export, decryption, key agreement) refuses.

:class:`LocalKey` is the smallest key source there is: a ``cryptography`` private key in memory and its
certificate chain. Tests and tools use it; production keys come from PKCS#12, PKCS#11 or CSC sources.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

if TYPE_CHECKING:
    from pyhanko.sign.signers import Signer as PdfSigner

    from signing.keys import KeySource

__all__ = ["LocalKey", "as_private_key", "cryptography_certificate"]

_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def _digest_name(algorithm: hashes.HashAlgorithm | utils.Prehashed) -> str:
    name = algorithm.name if not isinstance(algorithm, utils.Prehashed) else algorithm._algorithm.name
    if name not in _DIGESTS:
        raise ValueError(f"digest {name!r} is not supported for signing (use one of {', '.join(_DIGESTS)})")
    return name


def _sign_through(source: KeySource, data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> bytes:
    name = _digest_name(algorithm)
    if isinstance(algorithm, utils.Prehashed):
        return source.sign_hashes([data], name)[0]  # data is already the digest
    return source.sign_raw(data, name)


def _refuse(what: str) -> NoReturn:
    raise TypeError(f"{what} needs the private key itself, which stays in its key source (an HSM or a service)")


def cryptography_certificate(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


class _RsaKey(rsa.RSAPrivateKey):
    def __init__(self, source: KeySource, public: rsa.RSAPublicKey) -> None:
        self._source, self._public = source, public

    def sign(self, data: bytes, padding: padding.AsymmetricPadding,
             algorithm: hashes.HashAlgorithm | utils.Prehashed | utils.NoDigestInfo) -> bytes:
        # Key sources produce PKCS#1 v1.5 with a DigestInfo (what XML-DSig's rsa-sha* and every QES service
        # do): refuse PSS or a bare digest here rather than hand back a signature of another scheme.
        if not isinstance(padding, _PKCS1):
            raise ValueError(f"key source {self._source.name!r} signs PKCS#1 v1.5 only, not {padding.name}")
        if isinstance(algorithm, utils.NoDigestInfo):
            raise ValueError(f"key source {self._source.name!r} signs digests with their DigestInfo only")
        return _sign_through(self._source, data, algorithm)

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        _refuse("decryption")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _refuse("private_numbers()")

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        _refuse("exporting the key")

    def __copy__(self) -> _RsaKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _RsaKey:
        return self


_PKCS1 = padding.PKCS1v15


class _EcKey(ec.EllipticCurvePrivateKey):
    def __init__(self, source: KeySource, public: ec.EllipticCurvePublicKey) -> None:
        self._source, self._public = source, public

    def sign(self, data: bytes | bytearray | memoryview,
             signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise ValueError("only ECDSA signatures are supported")
        return _sign_through(self._source, bytes(data), signature_algorithm.algorithm)  # DER, as cryptography's

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _refuse("key agreement")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _refuse("private_numbers()")

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        _refuse("exporting the key")

    def __copy__(self) -> _EcKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _EcKey:
        return self


def as_private_key(source: KeySource) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A private key object for signxml whose signatures are made by ``source``."""
    public = cryptography_certificate(source.certificate()).public_key()
    if isinstance(public, rsa.RSAPublicKey):
        return _RsaKey(source, public)
    if isinstance(public, ec.EllipticCurvePublicKey):
        return _EcKey(source, public)
    raise ValueError(f"key source {source.name!r}: {type(public).__name__} keys cannot sign XML here (RSA or ECDSA)")


class LocalKey:
    """A key source over an in-memory ``cryptography`` private key and its certificate chain."""

    def __init__(self, name: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                 cert: asn1_x509.Certificate, chain: list[asn1_x509.Certificate] | None = None) -> None:
        self.name = name
        self._key, self._cert, self._chain = key, cert, list(chain or [])
        self._pdf_signer: PdfSigner | None = None

    def certificate(self) -> asn1_x509.Certificate:
        return self._cert

    def chain(self) -> list[asn1_x509.Certificate]:
        return list(self._chain)

    def pdf_signer(self) -> PdfSigner:
        if self._pdf_signer is None:
            from pyhanko.sign.signers import SimpleSigner
            from pyhanko_certvalidator.registry import SimpleCertificateStore

            der = self._key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
            local = self

            class KeptKeySigner(SimpleSigner):
                # SimpleSigner loads its key again for every signature (~30 ms for RSA-2048): sign with ours.
                def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
                    return local.sign_raw(data, digest_algorithm)

            self._pdf_signer = KeptKeySigner(
                signing_cert=self._cert, signing_key=asn1_keys.PrivateKeyInfo.load(der),
                cert_registry=SimpleCertificateStore.from_certs(self._chain),
            )
        return self._pdf_signer

    def sign_raw(self, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        return self._sign(data, _DIGESTS[digest_algorithm]())

    def sign_hashes(self, digests: list[bytes], digest_algorithm: str = "sha256") -> list[bytes]:
        return [self._sign(d, utils.Prehashed(_DIGESTS[digest_algorithm]())) for d in digests]

    def _sign(self, data: bytes, algorithm: hashes.HashAlgorithm | utils.Prehashed) -> bytes:
        if isinstance(self._key, rsa.RSAPrivateKey):
            return self._key.sign(data, padding.PKCS1v15(), algorithm)
        return self._key.sign(data, ec.ECDSA(algorithm))

    def close(self) -> None:
        self._pdf_signer = None
