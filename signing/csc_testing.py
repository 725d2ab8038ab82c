"""A CSC API v2 signing service for the tests and the demo, on 127.0.0.1, in a thread: never for real keys.

It holds one test key and its certificate chain as one credential, asks for a bearer token (or HTTP
Basic at auth/login) and the credential's PIN, binds each SAD to the hashes it authorises (SCAL 2),
and signs hashes with ``cryptography``. It counts the calls per endpoint, so a test can see that
several hashes went in one signHash call, and it can be told to fail: answer every call with an HTTP
status (``fail_status = 503``) or stop (:meth:`stop`: the port then refuses connections).
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from asn1crypto import algos, x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

__all__ = ["CscTestService"]

_RSA_ALGOS = ("rsassa_pkcs1v15", "sha256_rsa", "sha384_rsa", "sha512_rsa")
_EC_ALGOS = ("sha256_ecdsa", "sha384_ecdsa", "sha512_ecdsa")


class _Refusal(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass
class _Grant:
    credential_id: str
    remaining: int
    hashes: set[str]


class CscTestService:
    """``with CscTestService(key, [cert, *chain]) as service:`` serves ``service.url`` until the block ends."""

    def __init__(self, key: PrivateKeyTypes, certificates: list[x509.Certificate], *,
                 token: str = "kurier-test-token", pin: str = "123456", username: str | None = None,
                 password: str | None = None, credential_id: str = "kurier-test-signer",
                 multisign: int = 100, tls: ssl.SSLContext | None = None) -> None:
        self.key, self.certificates = key, certificates
        self.token, self.pin, self.username, self.password = token, pin, username, password
        self.credential_id, self.multisign = credential_id, multisign
        self.tls = tls  # a server-side context: serve HTTPS
        self.calls: Counter[str] = Counter()  # endpoint → calls
        self.hashes_signed: list[int] = []  # hashes per signHash call
        self.fail_status: int | None = None
        self._grants: dict[str, _Grant] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> CscTestService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real service
            # Headers and body in one segment: else Nagle and the client's delayed ACK add 40 ms a call.
            disable_nagle_algorithm = True
            wbufsize = 1 << 16

            def setup(self) -> None:
                super().setup()
                with service._lock:
                    service._connections.add(self.connection)

            def finish(self) -> None:
                super().finish()
                with service._lock:
                    service._connections.discard(self.connection)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, answer = service.handle(self.path, self.headers.get("Authorization"), self.rfile.read(length))
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet in tests
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="csc-test-service",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: the port then refuses connections (a service that is down)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:  # and the kept-alive connections go too, as when a service's host goes away
            connections, self._connections = set(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> CscTestService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API -----------------------------------------------------------------------------------------------

    def handle(self, path: str, authorization: str | None, raw: bytes) -> tuple[int, dict[str, Any]]:
        endpoint = path.removeprefix("/csc/v2/")
        with self._lock:
            self.calls[endpoint] += 1
        if self.fail_status is not None:
            return self.fail_status, {"error": "temporarily_unavailable", "error_description": "simulated failure"}
        try:
            body = json.loads(raw or b"{}")
            if endpoint == "info":
                return 200, {"specs": "2.0.0.2", "name": "Kurier CSC v2 test service", "region": "BG",
                             "lang": "en", "authType": ["basic", "oauth2code"], "description": "tests only",
                             "methods": ["auth/login", "credentials/list", "credentials/info",
                                         "credentials/authorize", "signatures/signHash"]}
            if endpoint == "auth/login":
                return 200, self._login(authorization)
            if authorization != f"Bearer {self.token}":
                raise _Refusal(401, "invalid_token", "The access token is not valid")
            handler = {"credentials/list": self._list, "credentials/info": self._info,
                       "credentials/authorize": self._authorize, "signatures/signHash": self._sign_hash}.get(endpoint)
            if handler is None:
                raise _Refusal(404, "invalid_request", f"No such method: {endpoint}")
            return 200, handler(body)
        except _Refusal as refusal:
            return refusal.status, {"error": refusal.error, "error_description": refusal.description}
        except (ValueError, KeyError, TypeError) as exc:
            return 400, {"error": "invalid_request", "error_description": f"Malformed request: {exc!r}"}

    def _login(self, authorization: str | None) -> dict[str, Any]:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        if self.username is None or authorization != f"Basic {expected}":
            raise _Refusal(401, "authentication_error", "The user name or password is wrong")
        return {"access_token": self.token, "expires_in": 3600}

    def _list(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"credentialIDs": [self.credential_id]}

    def _credential(self, body: dict[str, Any]) -> str:
        credential_id = body.get("credentialID")
        if credential_id != self.credential_id:
            raise _Refusal(400, "invalid_request", "Invalid parameter credentialID")
        return str(credential_id)

    def _info(self, body: dict[str, Any]) -> dict[str, Any]:
        self._credential(body)
        names = _RSA_ALGOS if isinstance(self.key, rsa.RSAPrivateKey) else _EC_ALGOS
        certs = self.certificates if body.get("certificates", "single") == "chain" else self.certificates[:1]
        return {"key": {"status": "enabled", "algo": [algos.SignedDigestAlgorithmId(n).dotted for n in names],
                        "len": self.certificates[0].public_key.bit_size},
                "cert": {"status": "valid", "certificates": [base64.b64encode(c.dump()).decode() for c in certs]},
                "authMode": "explicit", "SCAL": "2", "multisign": self.multisign}

    def _authorize(self, body: dict[str, Any]) -> dict[str, Any]:
        credential_id = self._credential(body)
        pins = [d.get("value") for d in body.get("authData", []) if d.get("id") == "PIN"]
        if pins != [self.pin]:
            raise _Refusal(400, "invalid_pin", "The PIN is invalid")
        count, hashes_b64 = int(body["numSignatures"]), list(body["hashes"])
        if not 0 < count <= self.multisign or count != len(hashes_b64):
            raise _Refusal(400, "invalid_request", "numSignatures does not match hashes, or exceeds multisign")
        sad = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[sad] = _Grant(credential_id, count, set(hashes_b64))
        return {"SAD": sad, "expiresIn": 300}

    def _sign_hash(self, body: dict[str, Any]) -> dict[str, Any]:
        credential_id = self._credential(body)
        hashes_b64 = list(body["hashes"])
        with self._lock:
            grant = self._grants.get(body.get("SAD", ""))
            if grant is None or grant.credential_id != credential_id:
                raise _Refusal(400, "invalid_request", "The SAD is invalid or expired")
            if not set(hashes_b64) <= grant.hashes or len(hashes_b64) > grant.remaining:
                raise _Refusal(400, "invalid_request", "The hashes were not authorised by this SAD")
            grant.remaining -= len(hashes_b64)
            if grant.remaining == 0:
                del self._grants[body["SAD"]]
            self.hashes_signed.append(len(hashes_b64))
        sign_algo = algos.SignedDigestAlgorithm({"algorithm": algos.SignedDigestAlgorithmId(body["signAlgo"])})
        try:
            digest_name = sign_algo.hash_algo
        except ValueError:  # the bare rsaEncryption OID: the hash algorithm is given apart
            digest_name = algos.DigestAlgorithmId(body["hashAlgorithmOID"]).native
        prehashed = Prehashed(getattr(hashes, digest_name.upper())())
        signatures = []
        for item in hashes_b64:
            digest = base64.b64decode(item)
            if isinstance(self.key, rsa.RSAPrivateKey):
                signatures.append(self.key.sign(digest, padding.PKCS1v15(), prehashed))
            elif isinstance(self.key, ec.EllipticCurvePrivateKey):
                signatures.append(self.key.sign(digest, ec.ECDSA(prehashed)))
            else:
                raise _Refusal(400, "invalid_request", "Unsupported key type")
        return {"signatures": [base64.b64encode(s).decode() for s in signatures]}
