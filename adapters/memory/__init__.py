"""An in-memory connection: the test double the tests, the demo and ``kurier bench`` deliver into.

It honours the destination contract (idempotent by key) and records duplicates, so a test can prove
exactly-once delivery. ``fail_first`` makes the first N attempts fail transiently, to exercise retries;
:meth:`MemorySink.go_down` keeps it unavailable until :meth:`MemorySink.come_back`, and
:meth:`MemorySink.refuse` makes it refuse one document for good. As a source's stand-in it records the
status changes it is told of (idempotent by ``seq``; the first ``fail_notify_first`` fail transiently),
and :meth:`MemorySink.report` lets a test play the recipient that reports a later status for a document
it received. With ``source: true`` it also submits what a test :meth:`MemorySink.send` s, the way a real
source would: in its own thread, again later while the hub cannot take it. :mod:`.testing` has the
contract suite's harness.
"""

from __future__ import annotations

import mimetypes
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import AdapterContext, Connection, Intake, PollingSource, Receipt, StatusReporter
from schemas.envelope import AttachmentRef, Envelope
from schemas.errors import DeliveryFailed, DestinationUnavailable, Refused, Transient
from schemas.payloads import PayloadStore
from schemas.status import RecipientStatus, StatusChange, StatusReport

__all__ = ["MemoryConnection", "MemorySink", "MemorySource", "Settings", "create", "roles", "sink"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fail_first: int = Field(0, ge=0)
    fail_notify_first: int = Field(0, ge=0)
    source: bool = False  # also a source: submits what is sent through it (MemorySink.send)
    poll_interval: float = Field(0.05, gt=0)
    # Keep each delivered envelope (tests read them). The bench pushes hundreds of thousands through one
    # sink: kept, they would be most of a worker's heap, and every full garbage collection walks them.
    keep: bool = True


class MemorySink:
    """Delivered envelopes by key; ``attempts`` counts every deliver() call per key."""

    def __init__(self, name: str, fail_first: int = 0) -> None:
        self.name = name
        self.fail_first = fail_first
        self.fail_notify_first = 0
        self.delivered: dict[str, Envelope] = {}
        self.keep = True
        self.forgotten: set[str] = set()  # keys delivered while not keeping: still idempotent
        self.attempts: Counter[str] = Counter()
        self.notified: dict[int, StatusChange] = {}  # by seq: what this system was told, once each
        self.notify_calls = 0
        self.reporter: StatusReporter | None = None  # the hub this sink was last built for
        self.available = True
        self.refused: dict[str, str] = {}  # DocumentGUID -> why the recipient refuses it for good
        self.outgoing: list[tuple[Envelope, dict[str, bytes]]] = []  # sent, with files, not yet taken by the hub
        self.submitted: dict[str, str] = {}  # DocumentGUID -> the hub's journal id, once taken
        self._lock = threading.Lock()
        self._calls = 0

    def deliver(self, envelope: Envelope, key: str) -> str:
        with self._lock:
            self._calls += 1
            self.attempts[key] += 1
            if self._calls <= self.fail_first:
                raise DestinationUnavailable(f"{self.name}: simulated outage (attempt {self._calls})")
            if not self.available:
                raise DestinationUnavailable(f"{self.name}: simulated outage (the peer is down)")
            if key in self.delivered or key in self.forgotten:
                return "already delivered"
            why = self.refused.get(envelope.document_guid)
            if why is not None:
                raise DeliveryFailed(f"{self.name}: the recipient refuses {envelope.document_guid} for good: {why}")
            if self.keep:
                self.delivered[key] = envelope
            else:
                self.forgotten.add(key)
            return "stored in memory"

    def close(self) -> None:
        pass

    # -- playing the peer ---------------------------------------------------------------------------
    def go_down(self) -> None:
        """Every delivery fails transiently from now until :meth:`come_back`."""
        self.available = False

    def come_back(self) -> None:
        self.available = True

    def refuse(self, document_guid: str, why: str = "simulated refusal") -> None:
        """From now on the recipient refuses ``document_guid`` for good (:class:`DeliveryFailed`)."""
        with self._lock:
            self.refused[document_guid] = why

    def held(self) -> Counter[str]:
        """The documents delivered here by DocumentGUID, counted: a duplicate shows as 2."""
        with self._lock:
            return Counter(env.document_guid for env in self.delivered.values())

    def send(self, envelope: Envelope, files: Mapping[str, bytes] | None = None) -> None:
        """Hand ``envelope`` to the hub through this connection's source (``source: true``), as an AIS would;
        ``files`` (name: bytes) become its attachments, put into the hub's payload store when it is taken."""
        with self._lock:
            self.outgoing.append((envelope.model_copy(update={"source": self.name}), dict(files or {})))

    def pending(self) -> list[tuple[Envelope, dict[str, bytes]]]:
        """What was sent and not yet taken by the hub, oldest first."""
        with self._lock:
            return list(self.outgoing)

    def taken(self, batch: Sequence[Envelope], results: Sequence[Receipt | Refused]) -> None:
        """The hub answered for ``batch`` (the first of :meth:`pending`): accepted or refused, each is done."""
        with self._lock:
            for env, result in zip(batch, results, strict=True):
                self.submitted[env.document_guid] = (
                    result.envelope_id if isinstance(result, Receipt) else result.journal_id or "")
            del self.outgoing[:len(batch)]  # send() only appends: these are still the first ones

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


class MemorySource(PollingSource):
    """Submits what was sent through its sink; what the hub cannot take yet stays for the next poll."""

    def __init__(self, target: MemorySink, poll_interval: float) -> None:
        super().__init__()
        self.name, self.target, self.poll_interval = target.name, target, poll_interval

    def poll_once(self, intake: Intake) -> int:
        batch = [_with_files(env, files, intake.store) for env, files in self.target.pending()]
        if not batch:
            return 0
        results = intake.submit_many(batch)  # Transient: nothing taken, all of it stays for the next poll
        self.target.taken(batch, results)
        return len(batch)


def _with_files(envelope: Envelope, files: Mapping[str, bytes], store: PayloadStore) -> Envelope:
    if not files:
        return envelope
    refs = []
    for name, data in files.items():
        stored = store.put_bytes(data)
        refs.append(AttachmentRef(file_name=name, mime_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                                  size=stored.size, sha256=stored.sha256))
    return envelope.model_copy(update={"attachments": [*envelope.attachments, *refs]})


class MemoryConnection(Connection):
    """A destination into a :class:`MemorySink`, which also hears the status changes of what it submitted."""

    destination: MemorySink

    def __init__(self, name: str, target: MemorySink, source: MemorySource | None = None) -> None:
        super().__init__(name, source=source, destination=target)

    def notify(self, change: StatusChange) -> None:
        self.destination.notify(change)


_SINKS: dict[str, MemorySink] = {}
_SINKS_LOCK = threading.Lock()


def sink(name: str) -> MemorySink:
    """The sink of that name in this process (tests read what was delivered from here)."""
    with _SINKS_LOCK:
        return _SINKS.setdefault(name, MemorySink(name))


def roles(settings: Settings) -> set[str]:
    return {"destination", "source"} if settings.source else {"destination"}


def create(name: str, settings: Settings, ctx: AdapterContext) -> MemoryConnection:
    target = sink(name)
    target.fail_first = settings.fail_first
    target.fail_notify_first = settings.fail_notify_first
    target.keep = settings.keep
    target.reporter = ctx.statuses
    source = MemorySource(target, settings.poll_interval) if settings.source else None
    return MemoryConnection(name, target, source)
