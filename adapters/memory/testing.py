"""The memory kind's contract harness (:mod:`adapters.contract`): its peer is its :class:`MemorySink`."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date
from typing import Any

from adapters.contract import PeerContext, Told
from adapters.memory import MemorySink, sink
from schemas.envelope import Envelope, Party
from schemas.errors import Transient
from schemas.identifiers import new_guid
from schemas.status import RecipientStatus, StatusReport

__all__ = ["MemoryPeer", "contract_peer"]

# Made-up administrations with valid EIK check digits.
SENDER = Party(eik="000695616", name="Община Примерово")
RECIPIENT = Party(eik="176035485", name="Областна администрация Примерна")
_RESEND_FOR = 30.0  # seconds a report is sent again while the hub answers "not yet"


class MemoryPeer:
    """A memory connection that is a source and a destination; the sink plays the system behind it."""

    refusal = "refuses"

    def __init__(self, name: str, ctx: PeerContext) -> None:
        self.name = name
        self.ctx = ctx

    @property
    def sink(self) -> MemorySink:
        return sink(self.name)

    def settings(self) -> dict[str, Any]:
        return {"adapter": "memory", "source": True, "poll_interval": 0.02}

    def submit(self, subject: str) -> str:
        guid = new_guid()
        envelope = Envelope(document_guid=guid, sender=SENDER, recipient=RECIPIENT, kind="Писмо", subject=subject,
                            reg_number="ОА-01-1/15.12.2025")
        # One small file of its own per document, so the hub's attachment checks have work to do.
        self.sink.send(envelope, {f"писмо-{guid[1:9]}.pdf": f"%PDF-1.4\n% {subject} {guid}\n".encode()})
        return guid

    def held(self) -> Counter[str]:
        return self.sink.held()

    def go_down(self) -> None:
        self.sink.go_down()

    def come_back(self) -> None:
        self.sink.come_back()

    def refuse(self, document_guid: str) -> None:
        self.sink.refuse(document_guid, "the case file is closed")

    def report(self, document_guid: str, status: RecipientStatus, *, reg_number: str | None = None,
               reg_date: date | None = None, reason: str | None = None) -> None:
        if self.sink.reporter is None:
            raise RuntimeError(f"memory connection {self.name!r} was not built by a hub")
        report = StatusReport(document_guid=document_guid, status=status, reg_number=reg_number, reg_date=reg_date,
                              reason=reason)
        deadline = time.monotonic() + _RESEND_FOR
        while True:  # a peer resends what the hub cannot take yet (its delivery not journaled as done yet)
            try:
                self.sink.reporter.report(self.name, report)
                return
            except Transient:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def told(self, document_guid: str) -> list[Told]:
        return [Told(c.status, c.destination, c.reg_number, c.reg_date, c.reason)
                for c in self.sink.told() if c.document_guid == document_guid]

    def close(self) -> None:
        self.sink.come_back()


def contract_peer(name: str, ctx: PeerContext) -> MemoryPeer:
    return MemoryPeer(name, ctx)
