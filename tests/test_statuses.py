"""Statuses per recipient end to end: a later status reported by a destination reaches the journal's history
and the source AIS. On the embedded defaults and on RabbitMQ + PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from adapters.filedrop.status import ToldStatus, read_change, render_report
from adapters.filedrop.testing import MUNICIPALITY, REGION, SampleDocument, write_document
from adapters.memory import sink
from schemas.errors import Refused
from schemas.identifiers import new_guid
from schemas.status import RecipientStatus, StatusReport
from tests.helpers import envelope, unique, wait_until

S = RecipientStatus
FAST = {"settle_seconds": 0.05, "poll_interval": 0.05, "fsync": False}


def _told(folder: Path) -> list[ToldStatus]:
    return sorted((read_change(p.read_bytes(), what=p.name) for p in folder.glob("*.status.xml")),
                  key=lambda t: t.seq)


def test_a_registration_reported_by_the_recipient_reaches_the_journal_and_the_source_ais(make_hub: Any) -> None:
    a, b = unique("obshtina"), unique("oblast")
    hub = make_hub(connections={a: {"adapter": "filedrop", "inbox": "inbox-a", "encoding": "windows-1251", **FAST},
                                b: {"adapter": "filedrop", "outbox": "outbox-b", **FAST}},
                   default_route={"deliver_to": [b]})
    inbox, outbox = hub.config.resolve_path("inbox-a"), hub.config.resolve_path("outbox-b")

    # Given AIS A drops a document in its inbox, When it is delivered to AIS B's outbox
    guid = write_document(inbox, SampleDocument(sender=MUNICIPALITY, recipient=REGION)).document_guid
    assert guid is not None
    wait_until(lambda: (outbox / f"{guid.strip('{}')}.xml").exists(), what="the document in B's outbox")
    # And B registers it and writes a status file with its number into <outbox>/status/
    report = StatusReport(document_guid=guid, status=S.REGISTERED, reg_number="РД-12-345/16.12.2025",
                          reg_date=date(2025, 12, 16))
    (outbox / "status" / "reg-1.xml").write_bytes(render_report(report, "windows-1251"))

    # Then the journal's history of the document shows accepted, queued, delivered, registered (B's number)
    (found,) = hub.journal.search(guid=guid)
    wait_until(lambda: any(s.status == S.REGISTERED for s in hub.journal.status_history(found.id)),
               what="registered in the journal")
    detail = hub.journal.get(found.id)
    assert detail is not None
    assert [(s.destination, s.status) for s in detail.statuses] == [
        (None, S.ACCEPTED), (b, S.QUEUED), (b, S.DELIVERED), (b, S.REGISTERED)]
    registered = detail.statuses[-1]
    assert (registered.reg_number, registered.reg_date) == ("РД-12-345/16.12.2025", date(2025, 12, 16))
    assert [(c.destination, c.status) for c in detail.current] == [(b, S.REGISTERED)]
    # And B's status file was taken and kept in processed/ with a receipt
    assert not list((outbox / "status").glob("*.xml"))
    assert len(list((outbox / "status" / "processed").glob("*/reg-1.receipt.txt"))) == 1

    # And A's <inbox>/status/ has a readable status file for each change, in A's encoding
    status_folder = inbox / "status"
    wait_until(lambda: len(_told(status_folder)) == 4, what="four status files for A")
    told = _told(status_folder)
    assert [t.status for t in told] == [S.ACCEPTED, S.QUEUED, S.DELIVERED, S.REGISTERED]
    assert all(p.read_bytes().startswith(b"<?xml version='1.0' encoding='windows-1251'?>")
               for p in status_folder.glob("*.status.xml"))
    assert {t.document_guid for t in told} == {guid} and {t.journal_id for t in told} == {found.id}
    assert {t.reg_number for t in told} == {"ОА-01-123/15.12.2025"}  # A's own number, as it sent it
    last = told[-1]
    assert (last.connection, last.recipient_eik, last.label) == (b, REGION.eik, "Регистриран / Registered")
    assert (last.recipient_reg_number, last.recipient_reg_date) == ("РД-12-345/16.12.2025", date(2025, 12, 16))
    assert told[0].connection is None  # accepted: no recipient decided yet
    # And the journal records that A was told of every change
    wait_until(lambda: all(s.told for s in hub.journal.status_history(found.id)), what="every change told")


def test_a_repeated_report_is_recorded_once_and_the_source_told_once(make_hub: Any) -> None:
    src, dst = unique("ais"), unique("region")
    hub = make_hub(connections={src: {"adapter": "memory"}, dst: {"adapter": "memory"}},
                   default_route={"deliver_to": [dst]})
    receipt = hub.submit(envelope(source=src))
    key = f"{receipt.envelope_id}:{dst}"
    wait_until(lambda: key in sink(dst).delivered, what="delivered")
    wait_until(lambda: [c.status for c in sink(src).told(receipt.envelope_id)] == [S.ACCEPTED, S.QUEUED, S.DELIVERED],
               what="the source told of accepted, queued, delivered")

    # When the recipient reports awaiting registration, then registered, then registered again (a resend)
    sink(dst).report(key, S.AWAITING_REGISTRATION)
    sink(dst).report(key, S.REGISTERED, reg_number="РД-01-7", reg_date=date(2026, 1, 5))
    sink(dst).report(key, S.REGISTERED, reg_number="РД-01-7", reg_date=date(2026, 1, 5))

    # Then the journal has each once, and so has the source
    history = [(s.status, s.reg_number) for s in hub.journal.status_history(receipt.envelope_id)]
    assert history[-2:] == [(S.AWAITING_REGISTRATION, None), (S.REGISTERED, "РД-01-7")] and len(history) == 5
    wait_until(lambda: len(sink(src).told(receipt.envelope_id)) == 5, what="the source told of both reports")
    told = sink(src).told(receipt.envelope_id)
    assert [c.status for c in told][-2:] == [S.AWAITING_REGISTRATION, S.REGISTERED]
    assert told[-1].reg_number == "РД-01-7" and told[-1].destination == dst
    assert [c.seq for c in told] == sorted({c.seq for c in told})


def test_a_report_for_a_document_never_delivered_there_is_refused_with_a_reason(make_hub: Any) -> None:
    dst, other = unique("region"), unique("elsewhere")
    hub = make_hub(connections={dst: {"adapter": "memory"}, other: {"adapter": "memory"}},
                   default_route={"deliver_to": [dst]})
    env = envelope()
    receipt = hub.submit(env)
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id])[receipt.envelope_id] == "delivered")

    with pytest.raises(Refused) as refused:
        hub.report(other, StatusReport(document_guid=env.document_guid, status=S.REGISTERED, reg_number="1"))
    assert refused.value.code == "not-delivered-here"
    assert f"never delivered through {other}" in str(refused.value) and f"delivered to {dst}" in str(refused.value)
    with pytest.raises(Refused) as unknown:
        hub.report(dst, StatusReport(document_guid=new_guid(), status=S.CLOSED))
    assert unknown.value.code == "unknown-document" and "knows no document" in str(unknown.value)
    assert S.REGISTERED not in [s.status for s in hub.journal.status_history(receipt.envelope_id)]


def test_a_source_that_cannot_be_told_for_a_while_is_told_everything_once_it_is_back(make_hub: Any) -> None:
    src, dst = unique("ais"), unique("region")
    hub = make_hub(connections={src: {"adapter": "memory", "fail_notify_first": 4}, dst: {"adapter": "memory"}},
                   default_route={"deliver_to": [dst]})
    receipts = hub.submit_many([envelope(source=src) for _ in range(5)])
    wait_until(lambda: len(sink(src).told()) == 15, what="every change told")
    assert sink(src).notify_calls >= 15 + 4  # the failed tries were repeated, none dropped
    for r in receipts:
        assert [c.status for c in sink(src).told(r.envelope_id)] == [S.ACCEPTED, S.QUEUED, S.DELIVERED]


def test_a_failed_delivery_tells_the_source_why(make_hub: Any) -> None:
    src, dst = unique("ais"), unique("region")
    hub = make_hub(connections={src: {"adapter": "memory"}, dst: {"adapter": "memory", "fail_first": 100}},
                   default_route={"deliver_to": [dst]}, retry={"max_attempts": 2, "first_delay_seconds": 0.1,
                                                               "max_delay_seconds": 0.1, "in_process_attempts": 1})
    receipt = hub.submit(envelope(source=src))
    wait_until(lambda: S.FAILED in [c.status for c in sink(src).told(receipt.envelope_id)], what="told failed")
    failed = sink(src).told(receipt.envelope_id)[-1]
    assert failed.destination == dst and failed.reason and "gave up after 2 attempts" in failed.reason


def test_bad_status_files_go_to_failed_with_a_reason(make_hub: Any) -> None:
    b = unique("oblast")
    hub = make_hub(connections={b: {"adapter": "filedrop", "outbox": "outbox-b", **FAST}},
                   default_route={"deliver_to": [b]})
    status = hub.config.resolve_path("outbox-b") / "status"
    guid = new_guid().encode()
    (status / "malformed.xml").write_bytes(b"<Status xmlns='urn:kurier:filedrop:1'><Code>registered")
    (status / "unknown-status.xml").write_bytes(
        b"<Status xmlns='urn:kurier:filedrop:1'><DocumentGUID>" + guid + b"</DocumentGUID><Code>lost</Code></Status>")
    (status / "unknown-guid.xml").write_bytes(render_report(StatusReport(document_guid=guid.decode(), status=S.CLOSED)))

    wait_until(lambda: len(list((status / "failed").glob("*/*.error.txt"))) == 3, what="three refused status files")
    codes = {p.name.removesuffix(".error.txt"): p.read_text("utf-8-sig").split("Код / Code: ")[1].split("\n")[0]
             for p in (status / "failed").glob("*/*.error.txt")}
    assert codes == {"malformed": "malformed-xml", "unknown-status": "unknown-status",
                     "unknown-guid": "unknown-document"}
    assert not list(status.glob("*.xml")) and not list((status / "processed").iterdir())
