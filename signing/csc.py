"""A signing key in a remote signing service speaking the Cloud Signature Consortium API, v1 or v2 (``csc``).

Only hashes leave Kurier: ``signatures/signHash`` gets the document digests, never the documents.
One call to ``credentials/authorize`` (a SAD for N signatures) and one to ``signatures/signHash`` sign
all the digests of :meth:`CscKey.sign_hashes`, up to the credential's ``multisign`` limit per call.

Errors are translated at this edge: a service that does not answer, answers 5xx or 429 is
:class:`~schemas.errors.Transient`; a 4xx refusal (a wrong PIN, an unknown credential) is
:class:`~schemas.errors.Permanent`, with the service's own error text. Tokens, passwords and PINs are
read from the environment when needed and are never put in a message.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.errors import ConfigError, Permanent, Transient, redact_secrets
from signing._prehashed import check_digests

if TYPE_CHECKING:
    import httpx
    from asn1crypto import x509
    from pyhanko.sign.signers import Signer as PdfSigner

__all__ = ["CredentialInfo", "CscClient", "CscKey", "Settings"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://")  # the part before /csc/v1/... or /csc/v2/...
    version: Literal[1, 2] = 2
    credential_id: str | None = None  # None: the one credential credentials/list returns
    token_env: str | None = None  # a bearer (OAuth2) token for the service, from this variable
    username_env: str | None = None  # or HTTP Basic to auth/login, from these two
    password_env: str | None = None
    pin_env: str | None = None  # the credential's PIN for credentials/authorize
    otp_env: str | None = None  # and/or its OTP
    verify_tls: bool = True
    ca_file: str | None = None  # trust this CA bundle for the service's TLS certificate
    timeout: float = Field(30.0, gt=0)
    batch_wait: float = Field(0.0, ge=0)  # pdf_signer(): how long to wait for more signatures to batch (s)

    @model_validator(mode="after")
    def _one_login(self) -> Settings:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("set both username_env and password_env for HTTP Basic, or neither")
        if self.token_env and self.username_env:
            raise ValueError("set token_env or username_env/password_env, not both")
        return self


@dataclass(frozen=True)
class CredentialInfo:
    """What credentials/info says of a credential."""

    credential_id: str
    certificate: x509.Certificate
    chain: list[x509.Certificate]  # the rest of certificates/chain, nearest first
    algorithms: frozenset[str]  # signature algorithm OIDs the key supports
    multisign: int  # the most hashes one signHash call may carry
    hash_pinning: bool  # SCAL 2: the SAD is bound to the hashes it authorises


def _env(name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(f"the {what} variable {name} is not set in the environment")
    return value


class CscClient:
    """The CSC endpoints Kurier uses, over one httpx client (keep-alive); not thread-safe."""

    def __init__(self, settings: Settings) -> None:
        import httpx

        self.settings = settings
        verify: ssl.SSLContext | bool = settings.verify_tls
        if settings.ca_file and settings.verify_tls:
            try:
                verify = ssl.create_default_context(cafile=settings.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"CSC ca_file {settings.ca_file}: cannot be read as PEM certificates "
                                  f"({exc})") from exc
        self._http = httpx.Client(verify=verify, timeout=settings.timeout, )
        self._token = _env(settings.token_env, "CSC bearer token")

    @property
    def where(self) -> str:
        return f"CSC v{self.settings.version} service {redact_secrets(self.settings.base_url)}"

    def post(self, endpoint: str, body: dict[str, Any], *, auth: Any = None) -> dict[str, Any]:
        """POST ``body`` to ``endpoint``; the JSON answer, or Transient/Permanent naming what went wrong."""
        url = f"{self.settings.base_url.rstrip('/')}/csc/v{self.settings.version}/{endpoint}"
        response = self._send(endpoint, url, body, auth)
        if response.status_code == 401 and auth is None and self.settings.username_env is not None:
            # The token from auth/login expired (a worker runs for days): log in again, once.
            self._token = None
            response = self._send(endpoint, url, body, auth)
        if response.status_code == 429 or response.status_code >= 500:
            raise Transient(f"{self.where}: {endpoint} answered HTTP {response.status_code} "
                            f"{_error_text(response)}", code="signer-unavailable")
        if response.status_code >= 400:
            raise Permanent(f"{self.where}: {endpoint} refused: HTTP {response.status_code} "
                            f"{_error_text(response)}", code="signing-refused")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise Permanent(f"{self.where}: {endpoint} answered something that is not a JSON object",
                            code="signer-protocol")
        return answer

    def _send(self, endpoint: str, url: str, body: dict[str, Any], auth: Any) -> httpx.Response:
        import httpx

        token = self.bearer_token() if auth is None else None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            return self._http.post(url, json=body, headers=headers, auth=auth)
        except httpx.TimeoutException as exc:
            raise Transient(f"{self.where}: {endpoint} timed out ({type(exc).__name__})",
                            code="signer-unavailable") from exc
        except httpx.ConnectError as exc:
            if _untrusted_tls(exc):
                raise Permanent(f"{self.where}: the service's TLS certificate is not trusted "
                                f"({_untrusted_tls(exc)}): set ca_file to the CA that issued it",
                                code="signer-tls") from exc
            raise Transient(f"{self.where}: {endpoint} failed, the service does not answer "
                            f"({redact_secrets(str(exc) or type(exc).__name__)})", code="signer-unavailable") from exc
        except httpx.TransportError as exc:
            raise Transient(f"{self.where}: {endpoint} failed, the service does not answer "
                            f"({redact_secrets(str(exc) or type(exc).__name__)})", code="signer-unavailable") from exc

    def bearer_token(self) -> str | None:
        """The bearer token: from the environment, or from auth/login with HTTP Basic (asked once)."""
        if self._token is None and self.settings.username_env is not None:
            self._login()
        return self._token

    def _login(self) -> None:
        import httpx

        user = _env(self.settings.username_env, "CSC user name") or ""
        password = _env(self.settings.password_env, "CSC password") or ""
        answer = self.post("auth/login", {}, auth=httpx.BasicAuth(user, password))
        self._token = _field(answer, "access_token", str, self.where)

    def list_credentials(self) -> list[str]:
        answer = self.post("credentials/list", {"maxResults": 100} if self.settings.version == 1 else {})
        return list(_field(answer, "credentialIDs", list, self.where))

    def credential_info(self, credential_id: str) -> CredentialInfo:
        from asn1crypto import x509

        answer = self.post("credentials/info", {"credentialID": credential_id, "certificates": "chain",
                                                "certInfo": False})
        where = f"{self.where}: credentials/info of {credential_id!r}"
        try:
            certs = [x509.Certificate.load(base64.b64decode(c)) for c in answer["cert"]["certificates"]]
            key = answer["key"]
            if key.get("status", "enabled") != "enabled":
                raise Permanent(f"{where}: the key is {key.get('status')}", code="signing-refused")
            return CredentialInfo(credential_id, certs[0], certs[1:], frozenset(key["algo"]),
                                  int(answer.get("multisign", 1)), str(answer.get("SCAL", "1")) == "2")
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise Permanent(f"{where}: no certificate or key description in the answer ({exc!r})",
                            code="signer-protocol") from exc

    def authorize(self, credential: CredentialInfo, hashes: list[str], digest_oid: str) -> str:
        """A SAD for signing ``hashes`` (base64), bound to them when the credential asks it (SCAL 2)."""
        body: dict[str, Any] = {"credentialID": credential.credential_id, "numSignatures": len(hashes)}
        pin = _env(self.settings.pin_env, "CSC PIN")
        otp = _env(self.settings.otp_env, "CSC OTP")
        if self.settings.version == 1:
            if credential.hash_pinning:
                body["hash"] = hashes
            body.update({k: v for k, v in (("PIN", pin), ("OTP", otp)) if v is not None})
        else:
            body.update({"hashes": hashes, "hashAlgorithmOID": digest_oid})
            auth_data = [{"id": k, "value": v} for k, v in (("PIN", pin), ("OTP", otp)) if v is not None]
            if auth_data:
                body["authData"] = auth_data
        return str(_field(self.post("credentials/authorize", body), "SAD", str, self.where))

    def sign_hash(self, credential: CredentialInfo, sad: str, hashes: list[str], digest_oid: str,
                  sign_oid: str) -> list[bytes]:
        body: dict[str, Any] = {"credentialID": credential.credential_id, "SAD": sad, "signAlgo": sign_oid}
        if self.settings.version == 1:
            body.update({"hash": hashes, "hashAlgo": digest_oid})
        else:
            body.update({"hashes": hashes, "hashAlgorithmOID": digest_oid, "operationMode": "S"})
        signatures = _field(self.post("signatures/signHash", body), "signatures", list, self.where)
        if len(signatures) != len(hashes):
            raise Permanent(f"{self.where}: signHash returned {len(signatures)} signatures for {len(hashes)} hashes",
                            code="signer-protocol")
        return [base64.b64decode(s) for s in signatures]

    def close(self) -> None:
        self._http.close()


def _untrusted_tls(exc: BaseException) -> str | None:
    """The verification failure behind a connection error, if that is what it was: retrying cannot help."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen)
        if "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return "certificate verify failed"
        seen = seen.__cause__ or seen.__context__
    return None


def _error_text(response: httpx.Response) -> str:
    """The service's own words: CSC errors are {"error": ..., "error_description": ...}."""
    try:
        answer = response.json()
        text = ": ".join(str(answer[k]) for k in ("error", "error_description") if answer.get(k))
    except (ValueError, AttributeError, TypeError):
        text = response.text.strip()
    return f"({redact_secrets(text or response.reason_phrase)})"


def _field(answer: dict[str, Any], name: str, kind: type, where: str) -> Any:
    value = answer.get(name)
    if not isinstance(value, kind):
        raise Permanent(f"{where}: the answer has no {name}", code="signer-protocol")
    return value


class CscKey:
    """A key source over a CSC credential: certificate and chain from credentials/info, hashes signed remotely."""

    Settings: ClassVar[type[BaseModel]] = Settings

    def __init__(self, name: str, settings: BaseModel) -> None:
        assert isinstance(settings, Settings)
        self.name = name
        self.settings = settings
        self.client = CscClient(settings, )
        self._credential: CredentialInfo | None = None
        self._pdf_signer: PdfSigner | None = None

    def credential(self) -> CredentialInfo:
        """The credential's description, asked once (on first use, so building a worker needs no network)."""
        if self._credential is None:
            credential_id = self.settings.credential_id
            if credential_id is None:
                found = self.client.list_credentials()
                if len(found) != 1:
                    raise ConfigError(f"signer key {self.name!r}: {self.client.where} has {len(found)} "
                                      f"credentials ({', '.join(map(repr, found[:10]))}): set credential_id")
                credential_id = found[0]
            self._credential = self.client.credential_info(credential_id)
        return self._credential

    def certificate(self) -> x509.Certificate:
        return self.credential().certificate

    def chain(self) -> list[x509.Certificate]:
        return list(self.credential().chain)

    def signature_oid(self, digest_algorithm: str) -> str:
        """The signAlgo to ask for: <digest>With<key> when the key lists it, else the bare key algorithm."""
        from asn1crypto import algos

        key_algorithm = self.certificate().public_key.algorithm  # "rsa" or "ec"
        combined = algos.SignedDigestAlgorithmId(f"{digest_algorithm}_{'ecdsa' if key_algorithm == 'ec' else 'rsa'}")
        supported = self.credential().algorithms
        if combined.dotted in supported or key_algorithm == "ec":
            return combined.dotted
        return algos.SignedDigestAlgorithmId("rsassa_pkcs1v15").dotted

    def sign_hashes(self, digests: list[bytes], digest_algorithm: str = "sha256") -> list[bytes]:
        from asn1crypto import algos

        check_digests(digests, digest_algorithm)
        credential = self.credential()
        digest_oid = algos.DigestAlgorithmId(digest_algorithm).dotted
        sign_oid = self.signature_oid(digest_algorithm)
        hashes = [base64.b64encode(d).decode("ascii") for d in digests]
        out: list[bytes] = []
        step = max(credential.multisign, 1)
        for start in range(0, len(hashes), step):
            batch = hashes[start:start + step]
            sad = self.client.authorize(credential, batch, digest_oid)
            out.extend(self.client.sign_hash(credential, sad, batch, digest_oid, sign_oid))
        return out

    def sign_raw(self, data: bytes, digest_algorithm: str = "sha256") -> bytes:
        return self.sign_hashes([hashlib.new(digest_algorithm, data).digest()], digest_algorithm)[0]

    def pdf_signer(self) -> PdfSigner:
        """v1: pyhanko's CSCSigner; v2: a signer that batches concurrent signatures into one signHash call."""
        if self._pdf_signer is None:
            from signing.csc_pdf import BatchingCscSigner, CscV1Signer

            self._pdf_signer = (CscV1Signer(self) if self.settings.version == 1
                                else BatchingCscSigner(self, wait=self.settings.batch_wait))
        return self._pdf_signer

    def close(self) -> None:
        self.client.close()
