"""The journal on SQLite, PostgreSQL and MariaDB: the same promises on each."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from router.journal import DeliveryOutcome, Journal, PlanOutcome, StageEvent, fingerprint
from schemas.envelope import Envelope, EnvelopeStatus, utcnow
from schemas.identifiers import new_guid
from tests.helpers import OTHER, envelope

ACCEPTED = [StageEvent("receive", "ok"), StageEvent("validate", "ok")]


@pytest.fixture
def journal(journal_url: str) -> Iterator[Journal]:
    j = Journal(journal_url, actor="test-node")
    j.upgrade()
    j.upgrade()  # a second upgrade is a no-op: start-up runs it every time
    yield j
    j.dispose()


def _route(journal: Journal, env_id: str, *destinations: str) -> None:
    journal.record_plans([PlanOutcome(env_id, EnvelopeStatus.ROUTED, [StageEvent("route", "ok")], list(destinations))])


def test_a_resend_is_recognised_and_a_reused_guid_with_other_content_is_a_conflict(journal: Journal) -> None:
    doc = envelope()
    [first] = journal.accept([doc], ACCEPTED)
    [resend] = journal.accept([doc.model_copy(update={"id": "f" * 32})], ACCEPTED)
    [clash] = journal.accept([doc.model_copy(update={"id": "e" * 32, "subject": "друго"})], ACCEPTED)
    assert not first.duplicate and resend.duplicate and resend.envelope_id == doc.id
    assert clash.conflict and clash.envelope_id == doc.id
    assert journal.count() == 1


def test_an_envelope_is_delivered_only_when_every_destination_is(journal: Journal) -> None:
    doc = envelope()
    journal.accept([doc], ACCEPTED)
    _route(journal, doc.id, "a", "b")
    _route(journal, doc.id, "a", "b")  # processing twice (a redelivered message) plans nothing new
    assert sorted(d for _, _, d in journal.pending_deliveries([doc.id])) == ["a", "b"]

    journal.record_deliveries([DeliveryOutcome(f"{doc.id}:a", doc.id, "a", "delivered", "ok")])
    assert journal.statuses([doc.id])[doc.id] == "routed"
    journal.record_deliveries([DeliveryOutcome(f"{doc.id}:b", doc.id, "b", "delivered", "ok")])
    assert journal.statuses([doc.id])[doc.id] == "delivered"

    detail = journal.get(doc.id)
    assert detail is not None
    assert [e.stage for e in detail.events] == ["receive", "validate", "route", "route", "deliver", "deliver"]
    assert all(e.actor == "test-node" for e in detail.events)
    assert {d.destination: d.attempts for d in detail.deliveries} == {"a": 1, "b": 1}


def test_an_envelopes_only_delivery_settles_it_by_its_outcome(journal: Journal) -> None:
    sent, refused, waiting, both = envelope(), envelope(), envelope(), envelope()
    journal.accept([sent, refused, waiting, both], ACCEPTED)
    for doc in (sent, refused, waiting):
        _route(journal, doc.id, "a")
    _route(journal, both.id, "a", "b")
    states = journal.delivery_statuses([f"{d.id}:a" for d in (sent, refused, waiting, both)])
    assert sorted(s.siblings for s in states.values()) == [1, 1, 1, 2]
    assert states[f"{both.id}:a"].siblings == 2 and states[f"{sent.id}:a"].siblings == 1
    assert f"{both.id}:b" not in states  # only what was asked for

    # What the delivery worker records for them: "only" when the journal counted one delivery
    journal.record_deliveries([
        DeliveryOutcome(f"{sent.id}:a", sent.id, "a", "delivered", "ok", only=True),
        DeliveryOutcome(f"{refused.id}:a", refused.id, "a", "failed", "refused for good", only=True),
        DeliveryOutcome(f"{waiting.id}:a", waiting.id, "a", "retry", "peer down", next_try=utcnow(), only=True),
        DeliveryOutcome(f"{both.id}:a", both.id, "a", "delivered", "ok"),
    ])
    assert journal.statuses([d.id for d in (sent, refused, waiting, both)]) == {
        sent.id: "delivered", refused.id: "failed", waiting.id: "routed", both.id: "routed"}


def test_retries_come_due_and_a_permanent_failure_fails_the_envelope(journal: Journal) -> None:
    doc = envelope()
    journal.accept([doc], ACCEPTED)
    _route(journal, doc.id, "a")
    now = utcnow()
    journal.record_deliveries([DeliveryOutcome(f"{doc.id}:a", doc.id, "a", "retry", "peer down",
                                               next_try=now + timedelta(seconds=30))])
    assert journal.due_deliveries(now, now - timedelta(hours=1)) == []
    later = now + timedelta(seconds=31)
    assert journal.due_deliveries(later, now - timedelta(hours=1)) == [(f"{doc.id}:a", doc.id, "a")]

    journal.record_deliveries([DeliveryOutcome(f"{doc.id}:a", doc.id, "a", "failed", "gave up")])
    detail = journal.get(doc.id)
    assert detail is not None and detail.summary.status == "failed"
    assert detail.deliveries[0].attempts == 2 and detail.deliveries[0].last_error == "gave up"


def test_unprocessed_envelopes_are_found_for_recovery(journal: Journal) -> None:
    stale, fresh = envelope(), envelope()
    journal.accept([stale, fresh], ACCEPTED)
    _route(journal, fresh.id, "a")
    assert journal.stale_received(utcnow()) == [stale.id]
    journal.touch([stale.id])
    assert journal.stale_received(utcnow() - timedelta(seconds=60)) == []


def test_search_by_guid_reg_number_eik_status_and_cyrillic_text(journal: Journal) -> None:
    mine = envelope(reg_number="ОбА-02-77/01.12.2025", subject="Искане за удостоверение за наследници")
    other = envelope(recipient=OTHER)
    journal.accept([mine, other], ACCEPTED)
    journal.refuse(None, source="ais", stage="receive", error_code="malformed-xml", error="не е XML", what="x.xml")

    assert [r.id for r in journal.search(guid=mine.document_guid.upper().strip("{}"))] == [mine.id]
    assert [r.id for r in journal.search(reg_number="ОбА-02-77/01.12.2025")] == [mine.id]
    assert [r.id for r in journal.search(eik=OTHER.eik)] == [other.id]
    assert [r.id for r in journal.search(text="удостоверение")] == [mine.id]
    refused = journal.search(status="refused")
    assert len(refused) == 1 and refused[0].error == "не е XML"
    assert journal.status_counts() == {"received": 2, "refused": 1}


def test_a_document_that_failed_before_delivery_is_processed_again_on_retry(journal: Journal) -> None:
    doc = envelope()
    journal.accept([doc], ACCEPTED)
    journal.record_plans([PlanOutcome(doc.id, EnvelopeStatus.FAILED, [StageEvent("transform", "failed", "XSD")],
                                      error_code="schema-invalid", error="not valid")])
    assert journal.retry(doc.id, who="operator") == 1
    assert journal.statuses([doc.id])[doc.id] == "received"
    assert journal.stale_received(utcnow()) == [doc.id]  # the next sweep queues it again


def test_the_intake_dump_fingerprints_exactly_as_before() -> None:
    # The intake fingerprints the envelope from the JSON it journals (one dump); resends of documents
    # journaled before must still be recognised, so the hash is the very one fingerprint() gives.
    from router.journal.base import dump_and_fingerprint
    from schemas.envelope import AttachmentRef, Correspondent

    tricky = [
        Envelope(document_guid=new_guid(), source="ais", kind="Писмо", subject='кавички " и ,"status": вътре'),
        Envelope(document_guid=new_guid(), source="ais", subject="\\", comment='","status":"x'),
        Envelope(document_guid=new_guid(), parent_guid=new_guid(), source="s", kind="K", reg_number="ОА-1/2",
                 correspondents=[Correspondent(name="Иван", city="Видин")],
                 attachments=[AttachmentRef(file_name="a.pdf", size=3, sha256="0" * 64)]),
    ]
    for env in tricky:
        data, fp = dump_and_fingerprint(env)
        assert data == env.to_json() and fp == fingerprint(env)
