"""A signing key on a PKCS#11 token or HSM (key type ``pkcs11``), tested against SoftHSM2.

The key never leaves the token: Kurier hashes, the token signs the hash. pdf_signer() is pyhanko's
:class:`~pyhanko.sign.pkcs11.PKCS11Signer` on this object's session; sign_raw/sign_hashes call
python-pkcs11 directly with the raw mechanisms (RSA PKCS#1 v1.5 over a DigestInfo, plain ECDSA), so a
precomputed hash (an XML signature's SignedInfo, a journal head) can be signed too.

One object holds one session (one per processing worker, as the key source contract asks). The PIN is
read from an environment variable when the session opens and is kept nowhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.errors import ConfigError, Permanent, Transient
from signing._prehashed import check_digests

if TYPE_CHECKING:
    from asn1crypto import x509
    from pyhanko.sign.signers import Signer as PdfSigner

__all__ = ["Pkcs11Key", "Settings"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    module: str = "/usr/lib/softhsm/libsofthsm2.so"  # the vendor's PKCS#11 library
    token_label: str
    key_label: str | None = None
    key_id: str | None = Field(None, pattern=r"^([0-9a-fA-F]{2})+$")  # CKA_ID in hex, e.g. "01"
    cert_label: str | None = None  # default: the certificate with the key's label (or id)
    chain_labels: tuple[str, ...] = ()  # intermediates kept on the token, nearest first
    pin_env: str | None = None  # the environment variable holding the user PIN (None: no login)

    @model_validator(mode="after")
    def _names_a_key(self) -> Settings:
        if self.key_label is None and self.key_id is None:
            raise ValueError("name the signing key: set key_label or key_id")
        return self


# Errors that mean the session or the device went away: a new session may well work, so retry later.
_LOST = ("SessionClosed", "SessionHandleInvalid", "DeviceRemoved", "TokenNotPresent", "DeviceError",
         "DeviceMemory", "SessionCount", "FunctionFailed", "GeneralError")


class Pkcs11Key:
    """A key source over one PKCS#11 session; not thread-safe (one per worker)."""

    Settings: ClassVar[type[BaseModel]] = Settings

    def __init__(self, name: str, settings: BaseModel) -> None:
        assert isinstance(settings, Settings)
        self.name = name
        self.settings = settings
        self._session: Any = None
        self._key: Any = None
        self._cert: x509.Certificate | None = None
        self._chain: list[x509.Certificate] = []
        self._pdf_signer: PdfSigner | None = None

    # -- the session -------------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"key {self.name!r} (token {self.settings.token_label!r} in {self.settings.module})"

    def _pin(self) -> str | None:
        env = self.settings.pin_env
        if env is None:
            return None
        pin = os.environ.get(env)
        if pin is None:
            raise ConfigError(f"{self._where()}: the PIN variable {env} is not set in the environment")
        return pin

    def _open(self) -> None:
        import pkcs11
        from pkcs11 import exceptions as p11e

        s = self.settings
        if not os.path.exists(s.module):
            raise Permanent(f"{self._where()}: the PKCS#11 module {s.module} does not exist", code="hsm-config")
        try:
            lib = pkcs11.lib(s.module)
            token = lib.get_token(token_label=s.token_label)
        except p11e.NoSuchToken:
            raise Permanent(f"{self._where()}: no token labelled {s.token_label!r} is present "
                            "(is the HSM connected, the token initialised, the label right?)",
                            code="hsm-no-token") from None
        except p11e.PKCS11Error as exc:
            raise Transient(f"{self._where()}: the PKCS#11 module failed: {type(exc).__name__}",
                            code="hsm-unavailable") from exc
        try:
            session = token.open(user_pin=self._pin())
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange):
            raise Permanent(f"{self._where()}: the token refused the PIN from {s.pin_env} (wrong PIN); "
                            "repeated tries lock the token", code="hsm-wrong-pin") from None
        except (p11e.PinLocked, p11e.PinExpired) as exc:
            raise Permanent(f"{self._where()}: the PIN is {type(exc).__name__.removeprefix('Pin').lower()}; "
                            "the token's security officer must reset it", code="hsm-pin-locked") from None
        except p11e.PKCS11Error as exc:
            raise Transient(f"{self._where()}: could not open a session: {type(exc).__name__}",
                            code="hsm-unavailable") from exc
        try:
            self._key = self._find_key(session)
            self._cert = self._find_cert(session, s.cert_label)
            self._chain = [self._find_cert(session, label) for label in s.chain_labels]
        except BaseException:
            session.close()
            raise
        self._session = session

    def _find_key(self, session: Any) -> Any:
        from pkcs11 import ObjectClass
        from pkcs11 import exceptions as p11e

        s = self.settings
        key_id = bytes.fromhex(s.key_id) if s.key_id else None
        try:
            return session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=s.key_label, id=key_id)
        except p11e.NoSuchKey:
            raise Permanent(f"{self._where()}: no private key with label {s.key_label!r} / id {s.key_id!r} "
                            "on the token (or the PIN does not give access to it)", code="hsm-no-key") from None
        except p11e.MultipleObjectsReturned:
            raise Permanent(f"{self._where()}: several private keys match label {s.key_label!r} / id "
                            f"{s.key_id!r}: set both key_label and key_id", code="hsm-ambiguous-key") from None

    def _find_cert(self, session: Any, label: str | None) -> x509.Certificate:
        from asn1crypto import x509
        from pkcs11 import Attribute, ObjectClass

        s = self.settings
        query: dict[Any, Any] = {Attribute.CLASS: ObjectClass.CERTIFICATE}
        if label is not None:
            query[Attribute.LABEL] = label
        elif s.key_label is not None:
            query[Attribute.LABEL] = s.key_label
        if label is None and s.key_id is not None:
            query[Attribute.ID] = bytes.fromhex(s.key_id)
        found = list(session.get_objects(query))
        if len(found) != 1:
            what = "no certificate" if not found else f"{len(found)} certificates"
            raise Permanent(f"{self._where()}: {what} labelled {query.get(Attribute.LABEL)!r} on the token",
                            code="hsm-no-certificate")
        return x509.Certificate.load(found[0][Attribute.VALUE])

    def _ensure(self) -> None:
        if self._session is None:
            self._open()

    def _lost(self, exc: Exception) -> Transient:
        """The session is gone (token pulled, HSM restarted): forget it, so the next call opens a new one."""
        self.close()
        return Transient(f"{self._where()}: the PKCS#11 session was lost ({type(exc).__name__}); "
                         "a new one is opened on the next try", code="hsm-session-lost")

    # -- the key source contract -------------------------------------------------------------------------------

    def certificate(self) -> x509.Certificate:
        self._ensure()
        assert self._cert is not None
        return self._cert

    def chain(self) -> list[x509.Certificate]:
        self._ensure()
        return list(self._chain)

    def pdf_signer(self) -> PdfSigner:
        if self._pdf_signer is None:
            self._ensure()
            self._pdf_signer = _make_pdf_signer(self)
        return self._pdf_signer

    def sign_raw(self, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        return self.sign_hashes([hashlib.new(digest_algorithm, data).digest()], digest_algorithm)[0]

    def sign_hashes(self, digests: list[bytes], digest_algorithm: str = "sha256") -> list[bytes]:
        from asn1crypto import algos, core
        from pkcs11 import KeyType, Mechanism
        from pkcs11 import exceptions as p11e
        from pkcs11.util.ec import encode_ecdsa_signature

        check_digests(digests, digest_algorithm)
        self._ensure()
        key = self._key
        out: list[bytes] = []
        try:
            for digest in digests:
                if key.key_type == KeyType.RSA:
                    # The raw RSA_PKCS mechanism signs what it is given: wrap the hash in a DigestInfo as
                    # the hash-then-sign mechanisms (SHA256_RSA_PKCS) would have.
                    info = algos.DigestInfo({"digest_algorithm": {"algorithm": digest_algorithm,
                                                                  "parameters": core.Null()},
                                             "digest": digest})
                    out.append(key.sign(info.dump(), mechanism=Mechanism.RSA_PKCS))
                elif key.key_type == KeyType.EC:
                    out.append(encode_ecdsa_signature(key.sign(digest, mechanism=Mechanism.ECDSA)))
                else:
                    raise Permanent(f"{self._where()}: keys of type {key.key_type.name} are not supported "
                                    "(RSA and EC are)", code="hsm-key-type")
        except p11e.PKCS11Error as exc:
            if type(exc).__name__ in _LOST:
                raise self._lost(exc) from exc
            raise Permanent(f"{self._where()}: the token refused to sign: {type(exc).__name__}",
                            code="hsm-refused") from exc
        return out

    def close(self) -> None:
        session, self._session, self._key, self._pdf_signer = self._session, None, None, None
        if session is not None:
            with contextlib.suppress(Exception):  # a session that is already gone needs no closing
                session.close()


def _make_pdf_signer(key: Pkcs11Key) -> PdfSigner:
    """pyhanko's PKCS#11 signer on ``key``'s session, with PKCS#11 errors translated to Kurier's."""
    from pkcs11 import KeyType
    from pkcs11 import exceptions as p11e
    from pyhanko.sign.pkcs11 import PKCS11Signer

    s = key.settings

    class _Signer(PKCS11Signer):
        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            try:
                return await super().async_sign_raw(data, digest_algorithm, dry_run=dry_run)
            except p11e.PKCS11Error as exc:
                if type(exc).__name__ in _LOST:
                    raise key._lost(exc) from exc
                raise Permanent(f"{key._where()}: the token refused to sign: {type(exc).__name__}",
                                code="hsm-refused") from exc

    # The certificates are passed in, already read: pyhanko then looks up only the key handle. SoftHSM2
    # (and many HSMs) have no hash-then-sign ECDSA mechanism: hash here, sign with the raw one.
    return _Signer(key._session, key_label=s.key_label, key_id=bytes.fromhex(s.key_id) if s.key_id else None,
                   signing_cert=key.certificate(), ca_chain=key.chain(), other_certs_to_pull=(),
                   use_raw_mechanism=key._key.key_type == KeyType.EC)
