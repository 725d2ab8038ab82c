"""An in-memory connection: the test double the tests, the demo and ``kurier bench`` deliver into.

It honours the destination contract (idempotent by key) and records duplicates, so a test can prove
exactly-once delivery. ``fail_first`` makes the first N attempts fail transiently, to exercise retries.
As a source's stand-in it records the status changes it is told of (idempotent by ``seq``; the first
``fail_notify_first`` fail transiently), and :meth:`MemorySink.report` lets a test play the recipient
that reports a later status for a document it received.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import AdapterContext, Connection, StatusReporter
from schemas.envelope import Envelope
from schemas.errors import DestinationUnavailable, Transient
from schemas.status import RecipientStatus, StatusChange, StatusReport

__all__ = ["MemoryConnection", "MemorySink", "Settings", "create", "roles", "sink"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fail_first: int = Field(0, ge=0)
    fail_notify_first: int = Field(0, ge=0)


class MemorySink:
    """Delivered envelopes by key; ``attempts`` counts every deliver() call per key."""

    def __init__(self, name: str, fail_first: int = 0) -> None:
        self.name = name
        self.fail_first = fail_first
        self.fail_notify_first = 0
        self.delivered: dict[str, Envelope] = {}
        self.attempts: Counter[str] = Counter()
        self.notified: dict[int, StatusChange] = {}  # by seq: what this system was told, once each
        self.notify_calls = 0
        self.reporter: StatusReporter | None = None  # the hub this sink was last built for
        self._lock = threading.Lock()
        self._calls = 0

    def deliver(self, envelope: Envelope, key: str) -> str:
        with self._lock:
            self._calls += 1
            self.attempts[key] += 1
            if self._calls <= self.fail_first:
                raise DestinationUnavailable(f"{self.name}: simulated outage (attempt {self._calls})")
            if key in self.delivered:
                return "already delivered"
            self.delivered[key] = envelope
            return "stored in memory"

    def close(self) -> None:
        pass

    def notify(self, change: StatusChange) -> None:
        with self._lock:
            self.notify_calls += 1
            if self.notify_calls <= self.fail_notify_first:
                raise Transient(f"{self.name}: simulated outage while telling change {change.seq}")
            self.notified.setdefault(change.seq, change)

    def told(self, envelope_id: str | None = None) -> list[StatusChange]:
        """The changes told, in the journal's order; only those of ``envelope_id`` if given."""
        with self._lock:
            changes = sorted(self.notified.values(), key=lambda c: c.seq)
        return [c for c in changes if envelope_id is None or c.envelope_id == envelope_id]

    def report(self, key: str, status: RecipientStatus, *, reg_number: str | None = None,
               reg_date: date | None = None, reason: str | None = None) -> None:
        """Report, as the recipient would, a later status of the document delivered here under ``key``."""
        if self.reporter is None:
            raise RuntimeError(f"memory connection {self.name!r} was not built by a hub")
        envelope = self.delivered[key]
        self.reporter.report(self.name, StatusReport(document_guid=envelope.document_guid, status=status,
                                                     reg_number=reg_number, reg_date=reg_date, reason=reason))


class MemoryConnection(Connection):
    """A destination into a :class:`MemorySink`, which also hears the status changes of what it submitted."""

    destination: MemorySink

    def __init__(self, name: str, target: MemorySink) -> None:
        super().__init__(name, destination=target)

    def notify(self, change: StatusChange) -> None:
        self.destination.notify(change)


_SINKS: dict[str, MemorySink] = {}
_SINKS_LOCK = threading.Lock()


def sink(name: str) -> MemorySink:
    """The sink of that name in this process (tests read what was delivered from here)."""
    with _SINKS_LOCK:
        return _SINKS.setdefault(name, MemorySink(name))


def roles(settings: Settings) -> set[str]:
    return {"destination"}


def create(name: str, settings: Settings, ctx: AdapterContext) -> MemoryConnection:
    target = sink(name)
    target.fail_first = settings.fail_first
    target.fail_notify_first = settings.fail_notify_first
    target.reporter = ctx.statuses
    return MemoryConnection(name, target)
