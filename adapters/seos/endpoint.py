"""Kurier's SEOS endpoint: ``Submit`` over HTTPS with client certificates, one URL per served administration.

Every SEOS participant exposes this endpoint (domain.md §3); Kurier serves it for each administration it
stands in for, at ``https://<host>:<port>/seos/<EIK>`` (and that URL with ``?wsdl`` for its WSDL), on a port
of its own, apart from the ops API. TLS requires a client certificate from a configured CA; who that
certificate belongs to is the handler's question (it compares it with the registry), so the handler
gets its DER bytes with the message.

The stdlib's threading HTTP server and not the ops API's ASGI server: a SOAP endpoint needs the TLS
peer's certificate, which uvicorn does not hand to the application. Each connection's TLS handshake
runs in its own thread, so a slow or silent client holds up nobody else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapters.seos.soap import SOAP_ACTION, fault, iter_chunks, read_submit, submit_response
from adapters.seos.wsdl import endpoint_wsdl
from schemas.errors import Refused, Transient

__all__ = ["SeosEndpoint", "SoapFault", "SubmitCall", "TlsFiles"]

log = logging.getLogger("kurier.seos.endpoint")

_TIMEOUT = 60.0  # seconds a connection may stay silent (handshake, headers, body)


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the endpoint's certificate (with its chain) and key, and the CAs clients must come from."""

    certificate: Path
    key: Path
    client_ca: Path


@dataclass(frozen=True)
class SubmitCall:
    """One ``Submit``: for whom, the SEOS message (UTF-8, in a file removed after the call), and who sent it."""

    administration: str  # the served administration's EIK, from the URL
    message: Path
    size: int
    peer_certificate: bytes  # the TLS client certificate, DER
    peer: str  # the client's address, for the log


class SoapFault(Exception):
    """Answer with a SOAP fault instead of a message (unreadable input, as the reference does)."""

    def __init__(self, reason: str, *, client: bool = True) -> None:
        super().__init__(reason)
        self.client = client


Handler = Callable[[SubmitCall], bytes]


def _server_context(tls: TlsFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(tls.certificate), str(tls.key))
    context.load_verify_locations(cafile=str(tls.client_ca))
    context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no connection
    return context


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: SeosEndpoint

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        sock.settimeout(_TIMEOUT)
        # The handshake waits for the client: in the request's thread, not in the accept loop.
        return self.endpoint.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class _Request(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "Kurier-SEOS"

    def setup(self) -> None:
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.info("SEOS endpoint: TLS handshake with %s refused: %s", self.client_address[0], exc)
            raise
        super().setup()

    def handle(self) -> None:
        # The client went away or never finished its handshake: nothing to answer.
        with contextlib.suppress(TimeoutError, ssl.SSLError, ConnectionError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("SEOS endpoint %s: " + format, self.client_address[0], *args)

    def _administration(self) -> str | None:
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if len(parts) == 2 and parts[0] == "seos" and parts[1] in self.server.endpoint.served:
            return parts[1]
        return None

    def _send(self, status: int, body: bytes, content_type: str = "text/xml; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _fault(self, reason: str, *, client: bool = True, status: int = 500) -> None:
        self._send(status, fault(reason, client=client))  # SOAP 1.1 faults travel with HTTP 500

    def do_GET(self) -> None:
        eik = self._administration()
        if eik is None:
            self._send(404, b"no SEOS endpoint here\n", "text/plain; charset=utf-8")
            return
        if urlsplit(self.path).query.lower() != "wsdl":
            self._send(405, b"POST a SOAP Submit here, or GET ?wsdl\n", "text/plain; charset=utf-8")
            return
        endpoint = self.server.endpoint
        self._send(200, endpoint_wsdl(endpoint.url(eik), endpoint.served[eik]))

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        eik = self._administration()
        if eik is None:
            self._fault(f"no administration is served at {urlsplit(self.path).path}", status=404)
            return
        action = (self.headers.get("SOAPAction") or "").strip().strip('"')
        if action != SOAP_ACTION:
            self._fault(f"unknown SOAPAction {action!r}: this endpoint has one operation, {SOAP_ACTION}")
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self._fault("a Content-Length is required", status=411)
            return
        length = int(length_text)
        if length > endpoint.max_bytes:
            self.close_connection = True  # the body is not read: this connection cannot go on
            self._fault(f"the message is {length} bytes, more than the {endpoint.max_bytes} bytes accepted",
                        status=413)
            return
        cert = self.connection.getpeercert(binary_form=True) or b""
        fd, name = tempfile.mkstemp(prefix="seos-in-", suffix=".xml", dir=endpoint.spool)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                size = read_submit(iter_chunks(self.rfile, length), out)
            answer = endpoint.handler(SubmitCall(eik, path, size, cert, self.client_address[0]))
        except Refused as exc:
            self._fault(str(exc))
            return
        except SoapFault as exc:
            self._fault(str(exc), client=exc.client)
            return
        except Transient as exc:  # the journal or the registry's copy not there for now: said, not dumped
            log.warning("SEOS endpoint: a Submit for %s could not be handled for now: %s", eik, exc)
            self._fault(f"the receiver cannot take the message for now ({exc}); send it again later",
                        client=False)
            return
        except Exception:
            log.exception("SEOS endpoint: handling a Submit for %s failed", eik)
            self._fault("the receiver could not handle the message (an internal error); try again later",
                        client=False)
            return
        finally:
            path.unlink(missing_ok=True)
        self._send(200, submit_response(answer))


class SeosEndpoint:
    """The HTTPS endpoint; ``served`` maps each served administration's EIK to its name."""

    def __init__(self, host: str, port: int, tls: TlsFiles, served: Mapping[str, str], handler: Handler, *,
                 max_bytes: int = 200 * 1024 * 1024, spool: Path | None = None, public_url: str | None = None) -> None:
        self.context = _server_context(tls)
        self.served = dict(served)
        self.handler = handler
        self.max_bytes = max_bytes
        self.spool = str(spool) if spool else None
        self._server = _Server((host, port), _Request)
        self._server.endpoint = self
        bound_host, bound_port = self._server.server_address[:2]
        host_text = bound_host.decode() if isinstance(bound_host, bytes) else str(bound_host)
        self.base_url = (public_url or f"https://{host_text}:{bound_port}").rstrip("/")
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, eik: str) -> str:
        return f"{self.base_url}/seos/{eik}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="seos-endpoint", daemon=True)
        self._thread.start()
        log.info("SEOS endpoint listening on %s for %d administration(s)", self.base_url, len(self.served))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
