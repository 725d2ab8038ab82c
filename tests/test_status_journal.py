"""The status history in the journal, on SQLite, PostgreSQL and MariaDB: Kurier's own statuses ride on the
batches that already commit, reports are recorded once, and what a source was not told yet survives a crash."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from adapters.base import Connection
from router.journal import DeliveryOutcome, Journal, PlanOutcome, StageEvent
from router.notify import Notifier
from schemas.envelope import Envelope, EnvelopeStatus, utcnow
from schemas.errors import Permanent, Refused, Transient
from schemas.status import RecipientStatus, StatusChange, StatusReport
from tests.helpers import envelope, unique

S = RecipientStatus


@pytest.fixture
def journal(journal_url: str) -> Iterator[Journal]:
    journal = Journal(journal_url, actor="test-node")
    journal.upgrade()
    yield journal
    journal.dispose()


class Listener(Connection):
    """A source that hears status changes, idempotently by seq, and can be made to fail."""

    def __init__(self, name: str, fail: Exception | None = None) -> None:
        super().__init__(name)
        self.heard: dict[int, StatusChange] = {}
        self.calls = 0
        self.fail = fail

    def notify(self, change: StatusChange) -> None:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        self.heard.setdefault(change.seq, change)


def _delivered(journal: Journal, source: str, *destinations: str, **fields: Any) -> Envelope:
    """A document accepted from ``source``, routed and delivered to ``destinations``."""
    env = envelope(source=source, **fields)
    journal.accept([env], [StageEvent("receive", "ok")])
    journal.record_plans([PlanOutcome(env.id, EnvelopeStatus.ROUTED, [], list(destinations))])
    journal.record_deliveries([DeliveryOutcome(f"{env.id}:{d}", env.id, d, "delivered", "ok") for d in destinations])
    return env


def _history(journal: Journal, env: Envelope) -> list[tuple[str | None, RecipientStatus]]:
    return [(s.destination, s.status) for s in journal.status_history(env.id)]


def test_kurier_records_accepted_queued_and_delivered_per_recipient(journal: Journal) -> None:
    source = unique("ais")
    env = _delivered(journal, source, "region", "archive")
    assert _history(journal, env) == [(None, S.ACCEPTED), ("region", S.QUEUED), ("archive", S.QUEUED),
                                      ("region", S.DELIVERED), ("archive", S.DELIVERED)]
    # A redelivered processing batch (after a crash) plans nothing new, and queues no status twice
    journal.record_plans([PlanOutcome(env.id, EnvelopeStatus.ROUTED, [], ["region", "archive"])])
    assert len(journal.status_history(env.id)) == 5
    assert {s.actor for s in journal.status_history(env.id)} == {"test-node"}


def test_a_document_that_will_not_be_delivered_says_why(journal: Journal) -> None:
    source = unique("ais")
    broken, paper, undeliverable = envelope(source=source), envelope(source=source), envelope(source=source)
    journal.accept([broken, paper, undeliverable])
    journal.record_plans([
        PlanOutcome(broken.id, EnvelopeStatus.FAILED, [], error_code="transform", error="the XSLT failed: line 3"),
        PlanOutcome(paper.id, EnvelopeStatus.PAPER, [], error="APOSTILLE: not digitised, send the paper original"),
        PlanOutcome(undeliverable.id, EnvelopeStatus.ROUTED, [], ["region"]),
    ])
    journal.record_deliveries([DeliveryOutcome(f"{undeliverable.id}:region", undeliverable.id, "region", "failed",
                                               "gave up after 10 attempts: outbox unwritable")])
    last = journal.status_history(broken.id)[-1]
    assert (last.destination, last.status, last.reason) == (None, S.FAILED, "the XSLT failed: line 3")
    assert journal.status_history(paper.id)[-1].status == S.PAPER_REQUIRED
    last = journal.status_history(undeliverable.id)[-1]
    assert (last.destination, last.status, last.reason) == ("region", S.FAILED,
                                                           "gave up after 10 attempts: outbox unwritable")


def test_a_report_is_recorded_once_however_often_it_comes(journal: Journal) -> None:
    env = _delivered(journal, unique("ais"), "region")
    registered = StatusReport(document_guid=env.document_guid, status=S.REGISTERED, reg_number="РД-12-345",
                              reg_date=date(2025, 12, 16))
    assert journal.record_report("region", registered) is True
    # the same report again, later (a resend, a file re-read after a crash): recorded once
    assert journal.record_report("region", registered.model_copy(update={"at": utcnow() + timedelta(hours=1)})) is False
    # a different one is news
    sofia_time = datetime(2025, 12, 16, 11, 30, tzinfo=timezone(timedelta(hours=2)))
    rejected = StatusReport(document_guid=env.document_guid, status=S.REJECTED, reason="Липсва подпис", at=sofia_time)
    assert journal.record_report("region", rejected) is True
    history = journal.status_history(env.id)
    assert [(s.status, s.reg_number, s.reason) for s in history][-2:] == [
        (S.REGISTERED, "РД-12-345", None), (S.REJECTED, None, "Липсва подпис")]
    assert history[-2].reg_date == date(2025, 12, 16) and history[-2].actor == "region"
    assert history[-1].at == sofia_time  # the recipient's time, kept as the same instant on every database


def test_a_report_on_what_was_not_delivered_there_is_refused_or_waits(journal: Journal) -> None:
    source = unique("ais")
    env = _delivered(journal, source, "region")
    on_the_way = envelope(source=source)
    journal.accept([on_the_way])
    journal.record_plans([PlanOutcome(on_the_way.id, EnvelopeStatus.ROUTED, [], ["region"])])

    def report(connection: str, env: Envelope) -> None:
        journal.record_report(connection, StatusReport(document_guid=env.document_guid, status=S.CLOSED))

    with pytest.raises(Refused, match=r"never delivered through archive \(it was delivered to region\)"):
        report("archive", env)
    # a document planned for region but not journaled as delivered yet: the report waits, it is not lost
    with pytest.raises(Transient, match="not journaled as done yet"):
        report("region", on_the_way)
    journal.record_deliveries([DeliveryOutcome(f"{on_the_way.id}:region", on_the_way.id, "region", "failed", "x")])
    with pytest.raises(Refused, match="gave up delivering it there"):
        report("region", on_the_way)
    assert S.CLOSED not in [s.status for s in journal.status_history(env.id)]


def test_changes_not_told_before_a_crash_are_told_by_the_next_notifier(journal: Journal,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    source = unique("ais")
    env = _delivered(journal, source, "region")
    journal.record_report("region", StatusReport(document_guid=env.document_guid, status=S.REGISTERED,
                                                 reg_number="РД-1"))
    _delivered(journal, unique("bench"), "region")  # a source that is no connection: never read

    # Given a notifier that told the source but was killed before the journal marked it told
    first = Listener(source)
    crashed = Notifier(journal, {source: first}, stop=_never())
    monkeypatch.setattr(journal, "mark_told", _killed)
    with pytest.raises(SystemExit):
        crashed.tell_once()
    monkeypatch.undo()
    assert len(first.heard) == 4 and all(not s.told for s in journal.status_history(env.id))

    # When the hub restarts, Then its notifier tells the source again, in order, and marks it all told
    again = Listener(source)
    assert Notifier(journal, {source: again}, stop=_never()).tell_once() == 4
    assert [c.status for c in sorted(again.heard.values(), key=lambda c: c.seq)] == [
        S.ACCEPTED, S.QUEUED, S.DELIVERED, S.REGISTERED]
    assert sorted(again.heard) == sorted(first.heard)  # the same seqs: the adapter can tell it heard them
    assert all(s.told for s in journal.status_history(env.id))
    assert Notifier(journal, {source: Listener(source)}, stop=_never()).tell_once() == 0


def test_a_source_down_is_left_alone_with_back_off_and_the_others_go_on(journal: Journal) -> None:
    down, up = unique("down"), unique("up")
    env_down, env_up = _delivered(journal, down, "region"), _delivered(journal, up, "region")
    clock = _Clock()
    sick, well = Listener(down, Transient("share offline")), Listener(up)
    notifier = Notifier(journal, {down: sick, up: well}, stop=_never(), first_delay=10, max_delay=40, clock=clock)
    assert notifier.tell_once() == 3 and sick.calls == 1  # one try, then the source waits
    assert notifier.tell_once() == 0 and sick.calls == 1  # backing off
    clock.now += 10
    notifier.tell_once()
    assert sick.calls == 2
    sick.fail = None
    clock.now += 20
    assert notifier.tell_once() == 3
    assert all(s.told for s in journal.status_history(env_down.id) + journal.status_history(env_up.id))


def test_a_change_that_can_never_be_told_is_kept_with_the_reason(journal: Journal) -> None:
    source = unique("ais")
    env = _delivered(journal, source, "region")
    Notifier(journal, {source: Listener(source, Permanent("cannot be written", code="x"))}, stop=_never()).tell_once()
    history = journal.status_history(env.id)
    assert all(s.told_at and not s.told and s.tell_error == "[x] cannot be written" for s in history)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _never() -> threading.Event:
    return threading.Event()


def _killed(*_: Any, **__: Any) -> None:
    raise SystemExit("kill -9")
