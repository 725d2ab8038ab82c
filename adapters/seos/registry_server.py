"""A local SEOS registry for tests and the demo: a real HTTP server on 127.0.0.1 in a thread.

It answers the five operations of the registry WSDL in their rpc/encoded shapes from a list of
entities, refuses requests whose SOAPAction does not name the operation in the body (as a strict
registry would), records every request it gets, and can be told to go down (HTTP 503, or closing
the connection without a word), to be slow, or to answer with given bytes (garbage, hostile XML).
"""

from __future__ import annotations

import dataclasses
import ssl
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from adapters.seos.registry_model import Entity, normalize_serial
from adapters.seos.registry_wire import (
    OPERATIONS,
    WireError,
    build_fault,
    build_response,
    read_request,
    soap_action,
)
from schemas.errors import KurierError
from schemas.identifiers import normalize_guid
from schemas.xmlsafe import parse_xml

__all__ = ["LocalRegistry", "RecordedRequest"]

Mode = Literal["up", "503", "close"]


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    soap_action: str
    content_type: str
    body: bytes


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class LocalRegistry:
    """The registry service on ``127.0.0.1:<port>`` (0: any free port); ``url`` is where to call it."""

    def __init__(self, entities: Iterable[Entity] = (), *, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self._lock = threading.Lock()
        self._entities: dict[str, Entity] = {}
        self.requests: list[RecordedRequest] = []
        self.mode: Mode = "up"
        self.delay = 0.0  # seconds to wait before answering (timeouts)
        self.raw_answer: tuple[int, bytes] | None = None  # (HTTP status, body) instead of the real answer
        for entity in entities:
            self.put(entity)
        self._server = _Server(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        if tls is not None:
            # The handshake runs in each request's thread (Handler.setup), not in the accepting one, so a
            # client that connects and stalls holds up only itself.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self._server.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}/service/"

    def start(self) -> LocalRegistry:
        # A short poll interval: stop() (a registry going away in a test) returns within 50 ms, not 500.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="seos-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: from now on the port refuses connections (an unreachable registry)."""
        if self._thread:  # shutdown() waits for serve_forever, which never started otherwise
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the data --------------------------------------------------------------------------------

    def put(self, entity: Entity, *, changed_at: datetime | None = None) -> Entity:
        """Add or replace an entity; its LastChange becomes ``changed_at`` (default: now), as the registry does."""
        stamped = dataclasses.replace(entity, last_change=_aware(changed_at or datetime.now(UTC)))
        with self._lock:
            self._entities[stamped.guid] = stamped
        return stamped

    @property
    def entities(self) -> list[Entity]:
        with self._lock:
            return list(self._entities.values())

    def last_change(self) -> datetime | None:
        stamps = [e.last_change for e in self.entities if e.last_change]
        return max(stamps) if stamps else None

    def select(self, operation: str, args: dict[str, str]) -> list[Entity]:
        """The entities the registry answers ``operation`` with."""
        entities = self.entities
        if operation == "GetAllRecords":
            return entities
        if operation == "GetNewRecords":
            since = _aware(datetime.fromisoformat(args.get("date", "")))
            return [e for e in entities if e.last_change and e.last_change >= since]
        if operation == "GetByEntityIdentifier":
            return [e for e in entities if e.entity_identifier == args.get("EntityIdentifier", "")]
        if operation == "GetByGuid":
            guid = normalize_guid(args.get("guid", ""))
            return [e for e in entities if e.guid == guid]
        serial = normalize_serial(args.get("CertificateSN", ""))
        return [e for e in entities if e.certificate_sn == serial]

    def answer(self, body: bytes, action: str) -> tuple[int, bytes]:
        """HTTP status and body for one request (a SOAP fault for anything the registry would refuse)."""
        try:
            operation, args = read_request(parse_xml(body, what="registry request", max_bytes=1024 * 1024))
        except (KurierError, WireError) as exc:
            return 500, build_fault("Client", str(exc))
        if action.strip('"') != soap_action(operation):
            return 500, build_fault("Client", f"SOAPAction {action!r} does not name {operation} "
                                              f"(expected {soap_action(operation)!r})")
        missing = [name for name, _ in OPERATIONS[operation] if name not in args]
        if missing:
            return 500, build_fault("Client", f"{operation} lacks its part(s) {', '.join(missing)}")
        try:
            selected = self.select(operation, args)
        except ValueError as exc:
            return 500, build_fault("Client", f"{operation}: {exc}")
        return 200, build_response(operation, selected, self.last_change())


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A refused TLS handshake or a client hanging up is what some tests do on purpose: no traceback.
        if not isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _handler(registry: LocalRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            if isinstance(self.request, ssl.SSLSocket):
                self.request.do_handshake()
            super().setup()

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read .requests
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            registry.requests.append(RecordedRequest(self.path, self.headers.get("SOAPAction", ""),
                                                     self.headers.get("Content-Type", ""), body))
            if registry.delay:
                threading.Event().wait(registry.delay)
            if registry.mode == "close":
                self.close_connection = True
                self.connection.close()  # no status line at all: a crashed or firewalled registry
                return
            if registry.mode == "503":
                status, answer = 503, b"Service Unavailable"
            elif registry.raw_answer is not None:
                status, answer = registry.raw_answer
            else:
                status, answer = registry.answer(body, self.headers.get("SOAPAction", ""))
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler
