"""The test PKI's services on 127.0.0.1: RFC 3161 timestamps, OCSP and CRLs, for the tests and the demo.

certomancer's Animator is a WSGI app that answers from the PKI's configuration (OCSP status and CRLs
computed at the request's time, timestamps signed by the TSA key); the standard library's WSGI server
(a thread per request) serves it in a thread on the port baked into the certificates' OCSP and CRL
URLs. A port already taken raises OSError (werkzeug's server would exit the process instead).
"""

from __future__ import annotations

import threading
from pathlib import Path
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any

from signing.pki import ARCH, PkiFiles, load_pki, pki_architecture

__all__ = ["PkiServer"]


def _server_classes() -> tuple[type, type]:
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # one stderr line per request otherwise
            pass

    return Server, QuietHandler


class PkiServer:
    """The services of one test PKI; a context manager (``with PkiServer(pki) as server: ...``)."""

    def __init__(self, pki: PkiFiles | Path, port: int | None = None) -> None:
        self.pki = pki if isinstance(pki, PkiFiles) else load_pki(pki)
        self.port = port or self.pki.port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tsa_url(self) -> str:
        return f"{self.url}/{ARCH}/tsa/tsa"

    def start(self) -> PkiServer:
        from certomancer.integrations.animator import Animator, AnimatorArchStore
        server_class, handler_class = _server_classes()
        # Bind first: when the port is taken (the services run already) this fails before the slow part.
        server = server_class(("127.0.0.1", self.port), handler_class)
        try:
            arch = pki_architecture(self.pki.directory)
            server.set_app(Animator(AnimatorArchStore({arch.arch_label: arch}), with_web_ui=False))
        except BaseException:
            server.server_close()
            raise
        self._server = server
        self._thread = threading.Thread(target=self._server.serve_forever, name="kurier-pki-services", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> PkiServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
