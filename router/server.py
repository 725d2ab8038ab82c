"""The ops API served by uvicorn in a thread of the hub's process.

The listening socket is bound by :meth:`ApiServer.bind` before anything else starts, so a second
``kurier run`` whose port is taken refuses to start with one clear line instead of running without
its API (uvicorn, left to bind in its thread, would log the error and let the hub run on).
"""

from __future__ import annotations

import errno
import socket
import threading
import time

import uvicorn

from router.api import create_app
from router.hub import Hub
from schemas.errors import ConfigError

__all__ = ["ApiServer"]


class ApiServer:
    def __init__(self, hub: Hub, token: str) -> None:
        app = create_app(hub.journal, hub.metrics, token, hub.ready)
        self.host, self.port = hub.config.api.host, hub.config.api.port
        self._server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                                     access_log=False))
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> None:
        """Take the API's address now; :class:`ConfigError` saying why and what to do if it cannot be had."""
        if self._socket is not None:
            return
        try:
            family, kind, proto, _, address = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0]
        except socket.gaierror as exc:
            raise ConfigError(f"api.host {self.host!r}: not an address of this machine ({exc.strerror}); set "
                              "api.host to an address or name it has") from exc
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart must not wait for TIME_WAIT
            sock.bind(address)
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            hint = ("another program (perhaps another kurier run) listens there: stop it, or give this one another "
                    "api.port (or api.enabled: false)" if exc.errno == errno.EADDRINUSE else
                    "choose an api.host this machine has and an api.port it may use")
            raise ConfigError(f"the ops API cannot listen on {self.host}:{self.port}: {exc.strerror}; {hint}") from exc
        self._socket = sock

    def start(self) -> None:
        self.bind()
        assert self._socket is not None
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="ops-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self._server.started:
            raise ConfigError(f"the ops API on {self.host}:{self.port} did not start; see the lines above")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
