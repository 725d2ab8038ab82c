"""The ops API served by uvicorn in a thread of the hub's process."""

from __future__ import annotations

import threading
import time

import uvicorn

from router.api import create_app
from router.hub import Hub

__all__ = ["ApiServer"]


class ApiServer:
    def __init__(self, hub: Hub, token: str) -> None:
        app = create_app(hub.journal, hub.metrics, token, hub.ready)
        api = hub.config.api
        self._server = uvicorn.Server(uvicorn.Config(app, host=api.host, port=api.port, log_level="warning",
                                                     access_log=False))
        self._thread = threading.Thread(target=self._server.run, name="ops-api", daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
