"""The adapter boundary: what the router asks of an adapter, and what an adapter may ask of the router.

Kept deliberately small (like httpx's transport boundary): a :class:`Connection` is one outside
system, with a source that hands envelopes to an :class:`Intake`, a destination that delivers one
envelope idempotently, or both; it reports later statuses through its context and is told of status
changes of what it submitted. The router never sees zeep, lxml or a database driver; adapters never
see queues or the journal, and import nothing of the router.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from schemas.envelope import Envelope
from schemas.errors import KurierError, Refused, Transient
from schemas.limits import Limits
from schemas.payloads import PayloadStore
from schemas.status import StatusChange, StatusReport

__all__ = [
    "AdapterContext",
    "Connection",
    "Destination",
    "Intake",
    "PollingSource",
    "Receipt",
    "Source",
    "StatusReporter",
]

log = logging.getLogger("kurier.adapters")


@dataclass(frozen=True)
class Receipt:
    """The hub's answer to a submitted document."""

    envelope_id: str
    duplicate: bool = False  # the same document was accepted before; nothing new was queued


class StatusReporter(Protocol):
    """How a destination tells the hub what its peer said later about a document it delivered."""

    def report(self, connection: str, report: StatusReport) -> None:
        """Journal ``report`` for the document delivered through ``connection``; the source is told.

        Raises :class:`~schemas.errors.Refused` when no delivery of that document went through
        ``connection`` (a peer reporting on a document it never received), :class:`Transient` when the
        journal is unavailable (report again later: reports are idempotent).
        """
        ...


class _NoReporter:
    def report(self, connection: str, report: StatusReport) -> None:
        raise Transient("status reports are not accepted yet: the hub is not running")


@dataclass(frozen=True)
class AdapterContext:
    """What an adapter gets from the hub when it is built: all it may use of the hub, never by import."""

    data_dir: Path
    store: PayloadStore
    limits: Limits
    statuses: StatusReporter = field(default_factory=_NoReporter)

    def resolve_path(self, value: str | Path) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.data_dir / path


class Intake(Protocol):
    """The hub as a source sees it."""

    @property
    def store(self) -> PayloadStore: ...

    def submit(self, envelope: Envelope) -> Receipt:
        """Validate, journal and queue a document; raise :class:`~schemas.errors.Refused` (journaled) if not."""
        ...

    def submit_many(self, batch: Sequence[Envelope]) -> list[Receipt | Refused]:
        """Validate, journal and queue documents together; a refusal (journaled) stands in a refused one's place.

        Raises :class:`~schemas.errors.Transient` when the journal or the queue is unavailable: nothing of
        the batch was accepted then, and the source submits it again later.
        """
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
        destination. Raise :class:`~schemas.errors.Transient` to be retried later,
        :class:`~schemas.errors.Permanent` when retrying cannot help.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class Source(Protocol):
    name: str

    def start(self, intake: Intake) -> None: ...

    def stop(self) -> None: ...


class Connection:
    """One configured outside system: a source, a destination, or (usually) both, sharing its clients.

    An adapter kind builds one per ``connections.<name>``. ``source`` hands documents to the hub,
    ``destination`` delivers to the system, and :meth:`notify` tells the system of a status change of
    a document it submitted (the file drop writes a status file; SEOS pushes a status message).
    """

    def __init__(self, name: str, *, source: Source | None = None, destination: Destination | None = None) -> None:
        self.name = name
        self.source = source
        self.destination = destination

    def notify(self, change: StatusChange) -> None:
        """Tell the system of a status change of a document it submitted; idempotent by ``change.seq``.

        Raise :class:`Transient` to be told again later. The default drops it: a system with no way to
        hear back (an in-memory test sink) has nothing to tell.
        """

    def close(self) -> None:
        if self.source is not None:
            self.source.stop()
        if self.destination is not None:
            self.destination.close()


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
