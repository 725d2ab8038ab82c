"""The adapter contract (adapters/contract.py), proved for every kind in ADAPTER_KINDS on both backends.

Each test plays two systems of one kind through their harness: A submits documents, the hub delivers
them to B. Nothing here is written per kind: a new kind joins by providing its harness.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from adapters import ADAPTER_KINDS
from adapters.contract import ContractPeer, PeerContext, peer_factory
from router.hub import Hub
from router.journal.records import DeliveryRecord, MessageDetail
from router.messages import delivery_messages
from router.queues import ConfirmingPublisher
from schemas.status import RecipientStatus
from tests.helpers import delete_queues, hub_config, unique, wait_until

S = RecipientStatus
KINDS = sorted(ADAPTER_KINDS)
# Quick retries, and a circuit that opens and probes quickly: a peer's outage costs seconds, not minutes.
RETRY = {"first_delay_seconds": 0.1, "max_delay_seconds": 0.3, "in_process_attempts": 1, "max_attempts": 50}
DELIVERY = {"failure_threshold": 3, "open_seconds": 0.3}


class Exchange:
    """Systems A and B of one kind, A's documents routed to B, and a hub over one journal, broker and data dir."""

    def __init__(self, kind: str, tmp_path: Path, backend: dict[str, str]) -> None:
        factory = peer_factory(kind)
        self.a = factory(unique("ais-a"), PeerContext(tmp_path / "peer-a", self._lose))
        self.b = factory(unique("ais-b"), PeerContext(tmp_path / "peer-b", self._lose))
        self.config = hub_config(
            tmp_path, backend, retry=RETRY, default_route={"deliver_to": [self.b.name]},
            connections={p.name: {**p.settings(), "delivery": DELIVERY} for p in (self.a, self.b)})
        self.hub: Hub | None = None

    def start(self) -> Hub:
        """A hub (a fresh one after :meth:`stop`) with its sources, workers and sweeper."""
        assert self.hub is None or not self.hub.started
        self.hub = Hub(self.config)
        self.hub.start()
        return self.hub

    def stop(self) -> None:
        if self.hub is not None and self.hub.started:
            self.hub.stop()

    def detail(self, guid: str) -> MessageDetail | None:
        assert self.hub is not None
        found = self.hub.journal.search(guid=guid)
        assert len(found) <= 1, f"{guid} journaled {len(found)} times"
        return self.hub.journal.get(found[0].id) if found else None

    def delivery(self, guid: str) -> DeliveryRecord | None:
        """The journal's delivery of ``guid`` to B, once it has one."""
        detail = self.detail(guid)
        rows = [d for d in detail.deliveries if d.destination == self.b.name] if detail else []
        return rows[0] if rows else None

    def attempts(self, guid: str) -> int:
        row = self.delivery(guid)
        return row.attempts if row is not None else 0

    def delivered(self, guid: str, status: str = "delivered") -> bool:
        row = self.delivery(guid)
        return row is not None and row.status == status

    def _lose(self, guid: str) -> None:
        """The hub's payload store loses the files of document ``guid``."""
        detail = self.detail(guid)
        assert self.hub is not None and detail is not None, f"{guid} is not journaled yet"
        for attachment in detail.envelope["attachments"]:
            self.hub.store.path(attachment["sha256"]).unlink()


@pytest.fixture(params=KINDS)
def exchange(request: pytest.FixtureRequest, tmp_path: Path, backend: dict[str, str]) -> Iterator[Exchange]:
    ex = Exchange(request.param, tmp_path, backend)
    yield ex
    ex.a.close()
    ex.b.close()
    ex.stop()
    delete_queues(ex.config)


def _told(peer: ContractPeer, guid: str) -> list[S]:
    return [t.status for t in peer.told(guid)]


@pytest.mark.parametrize("kind", KINDS)
def test_every_adapter_kind_has_a_contract_harness(kind: str, tmp_path: Path) -> None:
    peer = peer_factory(kind)("x", PeerContext(tmp_path, lambda guid: None))
    assert isinstance(peer, ContractPeer)
    assert peer.settings()["adapter"] == kind


def test_a_kind_without_a_harness_is_named_with_what_to_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ADAPTER_KINDS, "bare", "adapters.base")
    with pytest.raises(LookupError, match=r"adapter kind 'bare' has no contract harness: write contract_peer"):
        peer_factory("bare")


def test_deliver_is_idempotent_by_key(exchange: Exchange) -> None:
    a, b = exchange.a, exchange.b
    hub = exchange.start()
    # Given a document A sent, delivered to B
    first = a.submit("Писмо за идемпотентност")
    wait_until(lambda: exchange.delivered(first), what="the first document delivered")
    row = exchange.delivery(first)
    assert row is not None and row.attempts == 1
    envelope_id = exchange.detail(first).summary.id  # type: ignore[union-attr]
    envelope = hub.journal.load([envelope_id])[envelope_id]

    # When B's destination is called again, twice, with the same key (a worker that died before journaling)
    for _ in range(2):
        assert isinstance(hub.destinations[b.name].deliver(envelope, row.id), str)
    # Then B holds one copy
    assert b.held()[first] == 1

    # When the delivery's queue message comes again (redelivered by the broker), then a second document
    with hub.broker.connect() as conn:
        ConfirmingPublisher(conn, hub.topology).publish(delivery_messages([(row.id, b.name, envelope)], 10))
    second = a.submit("Писмо след повторението")
    # Then, once the second is delivered (behind the repeated message on B's queue), the first is still one copy,
    # not attempted again
    wait_until(lambda: exchange.delivered(second), what="the second document delivered")
    assert b.held() == {first: 1, second: 1}
    assert exchange.delivery(first).attempts == 1  # type: ignore[union-attr]


def test_a_transient_failure_is_retried_and_then_delivered_once(exchange: Exchange) -> None:
    a, b = exchange.a, exchange.b
    # Given B down
    b.go_down()
    hub = exchange.start()
    # When A sends a document
    guid = a.submit("Писмо докато получателят е недостъпен")
    # Then it waits: attempted, failed, to be tried again; not failed for good
    wait_until(lambda: exchange.attempts(guid) >= 2, what="a retried delivery")
    row = exchange.delivery(guid)
    assert row is not None and row.status == "retry" and row.last_error
    detail = exchange.detail(guid)
    assert detail is not None and detail.summary.status != "failed"
    assert {e.outcome for e in detail.events if e.stage == "deliver"} <= {"retry", "deferred"}
    assert b.held()[guid] == 0
    # When B is back, Then it is delivered, once, and A is told
    b.come_back()
    wait_until(lambda: exchange.delivered(guid), what="delivered after the outage")
    assert b.held()[guid] == 1
    assert hub.journal.count(status="failed") == 0
    wait_until(lambda: S.DELIVERED in _told(a, guid), what="A told of the delivery")
    assert _told(a, guid).count(S.DELIVERED) == 1 and S.FAILED not in _told(a, guid)


def test_a_permanent_failure_is_refused_at_once_with_its_reason(exchange: Exchange) -> None:
    a, b = exchange.a, exchange.b
    # Given a document of A's accepted and waiting for B, which is down
    b.go_down()
    exchange.start()
    guid = a.submit("Писмо, което получателят отказва")
    wait_until(lambda: exchange.attempts(guid) >= 1, what="a first attempt")
    # When B will refuse it for good, and is back
    b.refuse(guid)
    b.come_back()
    # Then the delivery fails at its next attempt, not after the retries run out, with B's reason
    wait_until(lambda: exchange.delivered(guid, status="failed"), what="the delivery failed")
    row = exchange.delivery(guid)
    assert row is not None and row.attempts < RETRY["max_attempts"]
    assert b.refusal in (row.last_error or "") and "gave up after" not in (row.last_error or "")
    detail = exchange.detail(guid)
    assert detail is not None and detail.summary.status == "failed"
    assert any(e.outcome == "failed" and b.refusal in (e.detail or "") for e in detail.events if e.stage == "deliver")
    assert b.held()[guid] == 0
    # And A is told it failed, and why
    wait_until(lambda: S.FAILED in _told(a, guid), what="A told of the failure")
    failed = a.told(guid)[-1]
    assert failed.status == S.FAILED and failed.destination == b.name and b.refusal in (failed.reason or "")


def test_statuses_reported_by_the_recipient_reach_the_journal_and_the_submitting_side(exchange: Exchange) -> None:
    a, b = exchange.a, exchange.b
    hub = exchange.start()
    # Given two documents of A's that B has received (perhaps before the hub journaled their delivery)
    registered, rejected = a.submit("Заявление за регистрация"), a.submit("Заявление за отказ")
    wait_until(lambda: b.held()[registered] == b.held()[rejected] == 1, what="both at B")
    # When B at once registers one with its number, and rejects the other with a reason
    b.report(registered, S.REGISTERED, reg_number="РД-12-345/16.12.2025", reg_date=date(2025, 12, 16))
    b.report(rejected, S.REJECTED, reason="Не е от компетентността на администрацията")
    # Then the journal's history has each, at B
    ids = {g: exchange.detail(g).summary.id for g in (registered, rejected)}  # type: ignore[union-attr]

    def journaled(guid: str, status: S) -> bool:
        return status in [s.status for s in hub.journal.status_history(ids[guid])]

    wait_until(lambda: journaled(registered, S.REGISTERED) and journaled(rejected, S.REJECTED),
               what="both reports journaled")
    last = hub.journal.status_history(ids[registered])[-1]
    assert (last.destination, last.status, last.reg_number, last.reg_date) == (
        b.name, S.REGISTERED, "РД-12-345/16.12.2025", date(2025, 12, 16))
    last = hub.journal.status_history(ids[rejected])[-1]
    assert (last.destination, last.status, last.reason) == (b.name, S.REJECTED,
                                                            "Не е от компетентността на администрацията")
    # And A is told of every change, in order, with B's number and reason
    wait_until(lambda: _told(a, registered)[-1:] == [S.REGISTERED] and _told(a, rejected)[-1:] == [S.REJECTED],
               what="A told of both reports")
    assert _told(a, registered) == [S.ACCEPTED, S.QUEUED, S.DELIVERED, S.REGISTERED]
    told = a.told(registered)[-1]
    assert (told.destination, told.reg_number, told.reg_date) == (b.name, "РД-12-345/16.12.2025", date(2025, 12, 16))
    assert a.told(rejected)[-1].reason == "Не е от компетентността на администрацията"


def test_nothing_is_lost_or_duplicated_across_a_restart(exchange: Exchange) -> None:
    a, b = exchange.a, exchange.b
    exchange.start()
    # Given three documents delivered, then B down and three more waiting for it
    sent = [a.submit(f"Писмо {i}") for i in range(3)]
    wait_until(lambda: all(exchange.delivered(g) for g in sent), what="the first three delivered")
    b.go_down()
    waiting = [a.submit(f"Писмо {i}") for i in range(3, 6)]
    wait_until(lambda: all(exchange.attempts(g) >= 1 for g in waiting), what="three waiting")
    # When the hub stops, A sends three more meanwhile, B comes back and a fresh hub starts
    exchange.stop()
    meanwhile = [a.submit(f"Писмо {i}") for i in range(6, 9)]
    b.come_back()
    hub = exchange.start()
    # Then every document is delivered, once, and A is told of each delivery once
    everything = sent + waiting + meanwhile
    wait_until(lambda: all(exchange.delivered(g) for g in everything), timeout=60, what="all nine delivered")
    assert b.held() == dict.fromkeys(everything, 1)
    assert hub.journal.count(status="failed") == 0
    wait_until(lambda: all(S.DELIVERED in _told(a, g) for g in everything), what="A told of every delivery")
    assert all(_told(a, g).count(S.DELIVERED) == 1 for g in everything)
