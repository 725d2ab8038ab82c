"""The adapter contract, and the harness through which one suite checks every adapter kind against it.

What every kind promises (``tests/test_contract.py`` proves it for each kind in
:data:`~adapters.ADAPTER_KINDS`, on the embedded defaults and on RabbitMQ + PostgreSQL):

1. deliver is idempotent by key: the same key twice leaves one copy at the peer;
2. a transient failure of the peer is retried until it is back, and then delivered once;
3. a permanent one is refused at once with a reason, which the journal keeps and the source is told;
4. statuses flow back: what the peer reports later reaches the journal and the submitting side;
5. nothing is lost or duplicated across a restart of the hub.

A kind joins the suite by providing ``contract_peer(name, ctx) -> ContractPeer`` in its ``testing``
module: the connection's settings, and the peer on the other side of it played for the test (a fake
server, a folder, a table). Nothing else in the suite is written per kind.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from adapters import ADAPTER_KINDS
from schemas.status import RecipientStatus

__all__ = ["ContractPeer", "PeerContext", "PeerFactory", "Told", "peer_factory"]


@dataclass(frozen=True)
class PeerContext:
    """What the suite gives a harness."""

    root: Path  # a folder of the peer's own: its folders, a fake server's files
    #: Make the hub's payload store lose the file of this SHA-256 (a broken share, an operator's mistake):
    #: for peers whose only way to fail a document for good is a document the hub cannot hand over whole.
    lose: Callable[[str], None]


@dataclass(frozen=True)
class Told:
    """A status change the submitting side was told of, as that side's own channel carried it."""

    status: RecipientStatus
    destination: str | None  # the recipient's connection; None before routing (accepted)
    reg_number: str | None = None  # the recipient's registration number (registered)
    reg_date: date | None = None
    reason: str | None = None  # why it was rejected or failed


@runtime_checkable
class ContractPeer(Protocol):
    """One connection of a kind under test, and the system on its other side, played by the test."""

    name: str  # the connection's name
    #: Words the reason of this peer's permanent refusal (:meth:`refuse`) contains, to find it in the journal.
    refusal: str

    def settings(self) -> dict[str, Any]:
        """``connections.<name>`` (with ``adapter``): delivering to this peer, and submitting from it."""
        ...

    def submit(self, subject: str) -> str:
        """Have the peer hand the hub a new document through the connection's source; its DocumentGUID."""
        ...

    def held(self) -> Counter[str]:
        """The documents the peer holds, by DocumentGUID, counted: a duplicate shows as 2."""
        ...

    def go_down(self) -> None:
        """Make every delivery fail transiently (unreachable, timing out) until :meth:`come_back`."""
        ...

    def come_back(self) -> None: ...

    def refuse(self, document_guid: str) -> None:
        """Make the next delivery of ``document_guid`` (accepted by the hub already) fail for good."""
        ...

    def report(self, document_guid: str, status: RecipientStatus, *, reg_number: str | None = None,
               reg_date: date | None = None, reason: str | None = None) -> None:
        """Report, as the recipient does, a later status of a document it received (through its own channel)."""
        ...

    def told(self, document_guid: str) -> list[Told]:
        """What the submitting side was told of ``document_guid``, in order."""
        ...

    def close(self) -> None:
        """Stop whatever the harness runs (a fake server); its files may stay."""
        ...


PeerFactory = Callable[[str, PeerContext], ContractPeer]


def peer_factory(kind: str) -> PeerFactory:
    """The kind's ``testing.contract_peer``; LookupError saying what to write when it has none."""
    module_name = f"{ADAPTER_KINDS[kind]}.testing"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        module = None
    factory = getattr(module, "contract_peer", None)
    if factory is None:
        raise LookupError(f"adapter kind {kind!r} has no contract harness: write contract_peer(name, ctx) -> "
                          f"ContractPeer in {module_name} (see adapters/contract.py)")
    return factory
