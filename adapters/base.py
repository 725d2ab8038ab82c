"""The adapter boundary: what the router asks of an adapter, and what an adapter may ask of the router.

Kept deliberately small (like httpx's transport boundary): a destination delivers one envelope
idempotently; a source hands envelopes to an :class:`Intake`. The router never sees zeep, lxml or a
database driver; adapters never see queues or the journal.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from router.config import LimitsConfig
from router.errors import KurierError
from router.store import PayloadStore
from schemas.envelope import Envelope

__all__ = ["AdapterContext", "Destination", "Intake", "PollingSource", "Receipt", "Source"]

log = logging.getLogger("kurier.adapters")


@dataclass(frozen=True)
class Receipt:
    """The hub's answer to a submitted document."""

    envelope_id: str
    duplicate: bool = False  # the same document was accepted before; nothing new was queued


@dataclass(frozen=True)
class AdapterContext:
    """What an adapter gets from the hub when it is built."""

    data_dir: Path
    store: PayloadStore
    limits: LimitsConfig

    def resolve_path(self, value: str | Path) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.data_dir / path


class Intake(Protocol):
    """The hub as a source sees it."""

    store: PayloadStore

    def submit(self, envelope: Envelope) -> Receipt:
        """Validate, journal and queue a document; raise :class:`~router.errors.Refused` (journaled) if not."""
        ...

    def refuse(self, source: str, what: str, error: KurierError) -> str:
        """Journal input that could not even become an envelope (e.g. malformed XML); return the journal id."""
        ...


@runtime_checkable
class Destination(Protocol):
    name: str

    def deliver(self, envelope: Envelope, key: str) -> str:
        """Deliver ``envelope`` (attachments read from the store) and return a short receipt text.

        Must be idempotent by ``key``: delivering the same key twice leaves one copy at the
        destination. Raise :class:`~router.errors.Transient` to be retried later,
        :class:`~router.errors.Permanent` when retrying cannot help.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class Source(Protocol):
    name: str

    def start(self, intake: Intake) -> None: ...

    def stop(self) -> None: ...


class PollingSource:
    """A source that looks for work every ``poll_interval`` seconds in its own thread.

    Subclasses implement :meth:`poll_once`. An exception in one poll is logged and the next poll
    runs: a source never dies on one bad document.
    """

    name: str
    poll_interval: float = 1.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self, intake: Intake) -> int:
        """Handle what is ready; return how many items were handled."""
        raise NotImplementedError

    def start(self, intake: Intake) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(intake,), name=f"source-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self, intake: Intake) -> None:
        while not self._stop.is_set():
            try:
                handled = self.poll_once(intake)
            except Exception:
                log.exception("source %s: poll failed; trying again in %.1fs", self.name, self.poll_interval)
                handled = 0
            if not handled:
                self._stop.wait(self.poll_interval)
