"""pyhanko signers over a CSC credential (see :mod:`signing.csc`): what :meth:`CscKey.pdf_signer` hands out.

- CSC v1: pyhanko's own :class:`~pyhanko.sign.signers.csc_signer.CSCSigner` (it speaks v1's request
  shapes), with Kurier's client for credentials/authorize and Kurier's errors.
- CSC v2: :class:`BatchingCscSigner`, which collects the signatures asked for concurrently on one event
  loop (several ``async_sign_pdf`` under one ``asyncio.gather``) and signs their hashes in one
  credentials/authorize + signatures/signHash round, up to the credential's ``multisign``.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import threading
from typing import TYPE_CHECKING, Any

import aiohttp
from asn1crypto import algos
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers import Signer
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCCredentialInfo,
    CSCServiceSessionInfo,
    CSCSigner,
)
from pyhanko_certvalidator.registry import SimpleCertificateStore

from schemas.errors import KurierError, Permanent, Transient

if TYPE_CHECKING:
    from signing.csc import CscKey

__all__ = ["BatchingCscSigner", "CscV1Signer"]

# A generous upper bound for an RSA-4096 signature: pyhanko reserves room in the PDF before signing.
_RESERVED_SIGNATURE_BYTES = 512


class BatchingCscSigner(Signer):
    """Signs hashes through :meth:`CscKey.sign_hashes`, batching the requests that arrive together.

    The first signature of a batch waits ``wait`` seconds (0: until the event loop has run every other
    ready task) for company; a full batch (``multisign``) goes at once. Failures reach every waiter.
    """

    def __init__(self, key: CscKey, *, wait: float = 0.0) -> None:
        self._key = key
        self._wait = wait
        self._limit = max(key.credential().multisign, 1)
        self._pending: list[tuple[bytes, asyncio.Future[bytes]]] = []
        self._pending_algorithm = ""
        self._calls = threading.Lock()  # one signing round at a time on the key's HTTP client
        self._tasks: set[asyncio.Task[None]] = set()
        certificate = key.certificate()
        super().__init__(signing_cert=certificate,
                         cert_registry=SimpleCertificateStore.from_certs([certificate, *key.chain()]))

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            return bytes(_RESERVED_SIGNATURE_BYTES)
        loop = asyncio.get_running_loop()
        if self._pending and self._pending[0][1].get_loop() is not loop:
            self._pending = []  # left by an event loop that ended before their round ran: nobody waits
        if self._pending and self._pending_algorithm != digest_algorithm:
            self._start_round()  # one round signs one digest algorithm
        future: asyncio.Future[bytes] = loop.create_future()
        self._pending.append((hashlib.new(digest_algorithm, data).digest(), future))
        self._pending_algorithm = digest_algorithm
        if len(self._pending) >= self._limit:
            self._start_round()
        elif len(self._pending) == 1:
            loop.call_later(self._wait, self._start_round)
        return await future

    def _start_round(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = batch[0][1].get_loop().create_task(self._round(batch, self._pending_algorithm))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _round(self, batch: list[tuple[bytes, asyncio.Future[bytes]]], digest_algorithm: str) -> None:
        def call() -> list[bytes]:
            with self._calls:
                return self._key.sign_hashes([digest for digest, _ in batch], digest_algorithm)

        try:
            signatures = await asyncio.to_thread(call)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), signature in zip(batch, signatures, strict=True):
            if not future.done():
                future.set_result(signature)


class _Authorizer(CSCAuthorizationManager):
    """credentials/authorize through Kurier's client (PIN/OTP from the environment, Kurier's errors)."""

    def __init__(self, key: CscKey, session: CSCServiceSessionInfo, info: CSCCredentialInfo) -> None:
        super().__init__(session, info)
        self._key = key

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        sad = await asyncio.to_thread(self._key.client.authorize, self._key.credential(), hash_b64s,
                                      algos.DigestAlgorithmId("sha256").dotted)
        return CSCAuthorizationInfo(sad=sad)


class CscV1Signer(CSCSigner):
    """pyhanko's CSC (v1) signer, one signHash call per signature, with its errors translated to Kurier's.

    pyhanko's signer needs an aiohttp session on the running loop, and ``sign_pdf`` runs a loop per
    document, so each signature opens its own session: use one such signer object on one loop at a time.
    """

    def __init__(self, key: CscKey) -> None:
        credential = key.credential()
        info = CSCCredentialInfo(
            signing_cert=credential.certificate, chain=credential.chain,
            supported_mechanisms=frozenset(algos.SignedDigestAlgorithmId(oid).native for oid in credential.algorithms),
            max_batch_size=credential.multisign, hash_pinning_required=credential.hash_pinning, response_data={})
        session = CSCServiceSessionInfo(service_url=key.settings.base_url.rstrip("/"),
                                        credential_id=credential.credential_id,
                                        oauth_token=key.client.bearer_token(), api_ver="v1")
        self._key = key
        self._failure: BaseException | None = None
        super().__init__(session=None, auth_manager=_Authorizer(key, session, info),  # type: ignore[arg-type]
                         sign_timeout=int(key.settings.timeout), batch_size=1)

    def _ssl(self) -> Any:
        s = self._key.settings
        if not s.verify_tls:
            return False
        return ssl.create_default_context(cafile=s.ca_file) if s.ca_file else True

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            return await super().async_sign_raw(data, digest_algorithm, dry_run=True)
        self._failure = None
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl())) as session:
            self.session = session
            try:
                return await super().async_sign_raw(data, digest_algorithm)
            except SigningError as exc:
                raise self._translate(self._failure or exc) from exc
            finally:
                self.session = None  # type: ignore[assignment]

    async def _do_commit(self, batch: Any) -> None:
        # pyhanko logs a failed commit and raises a bare "no results" later: keep the real cause.
        try:
            await super()._do_commit(batch)
        except SigningError as exc:
            self._failure = exc
            raise

    def _translate(self, exc: BaseException) -> KurierError:
        where = self._key.client.where
        cause = exc.__cause__ if isinstance(exc, SigningError) and exc.__cause__ is not None else exc
        if isinstance(cause, aiohttp.ClientResponseError):
            text = f"{where}: signatures/signHash answered HTTP {cause.status} ({cause.message})"
            if cause.status == 429 or cause.status >= 500:
                return Transient(text, code="signer-unavailable")
            return Permanent(text, code="signing-refused")
        if isinstance(cause, aiohttp.ClientError | asyncio.TimeoutError):
            return Transient(f"{where}: signatures/signHash failed, the service does not answer "
                             f"({type(cause).__name__})", code="signer-unavailable")
        return Permanent(f"{where}: signatures/signHash: {exc}", code="signer-protocol")
