"""Outages told once: the helper on its own (an injected clock), and a real journal outage during intake."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from adapters.filedrop.testing import SampleDocument, write_document
from router.hub import Hub
from schemas.outage import Outage
from tests.conftest import _fresh
from tests.helpers import Clock, hub_config, unique, wait_until
from tests.proxy import TcpProxy

REASON = "the journal database is unavailable: connection refused"


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "kurier.test.outage"]


def test_an_outage_is_told_when_it_starts_every_30s_while_it_lasts_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="kurier.test.outage")
    clock = Clock()
    outage = Outage("source ais: handing documents to the hub", logging.getLogger("kurier.test.outage"), clock=clock)
    start = clock.now

    # Given the journal down for 75 s, a try failing every second, more documents waiting as they arrive
    for second in range(75):
        clock.now = start + second
        outage.failed(REASON, waiting=min(second + 1, 40))
    # When it works again at 80 s
    clock.now = start + 80
    outage.recovered()

    # Then four lines in all: the start, at 30 s and 60 s, the end; each says what, why and how many
    lines = _lines(caplog)
    assert [level for level, _ in lines] == ["WARNING", "WARNING", "WARNING", "INFO"]
    first, at_30, at_60, end = (text for _, text in lines)
    assert first == f"source ais: handing documents to the hub is failing: {REASON}; 1 document(s) waiting"
    assert "still failing after 30s" in at_30 and "31 document(s) waiting" in at_30 and REASON in at_30
    assert "still failing after 60s" in at_60 and "40 document(s) waiting" in at_60
    assert end == ("source ais: handing documents to the hub works again after 80s (75 failed tries); "
                   "at most 40 document(s) waited")
    assert not outage.down


def test_the_next_outage_is_told_afresh_and_a_working_thing_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kurier.test.outage")
    clock = Clock()
    outage = Outage("worker process", logging.getLogger("kurier.test.outage"), clock=clock)
    outage.recovered()  # nothing was down: nothing to say
    outage.failed("the message broker at amqp://***@mq:5672// is unavailable: [Errno 111] Connection refused")
    clock.now += 5
    outage.recovered()
    clock.now += 100
    outage.failed("the journal database is unavailable: server closed the connection unexpectedly", waiting=7)

    lines = _lines(caplog)
    assert len(lines) == 3
    assert "Connection refused" in lines[0][1] and "waiting" not in lines[0][1]  # no count given, none claimed
    assert lines[1] == ("INFO", "worker process works again after 5s (1 failed tries)")
    assert "server closed the connection" in lines[2][1] and "7 document(s) waiting" in lines[2][1]


def test_a_blip_shorter_than_quiet_for_is_not_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="kurier.test.outage")
    clock = Clock()
    outage = Outage("destination region", logging.getLogger("kurier.test.outage"), quiet_for=30, clock=clock)

    # A destination failing for 10 s, then delivering again: nothing worth an operator's attention
    for _ in range(10):
        outage.failed("outbox not writable")
        clock.now += 1
    outage.recovered()
    assert _lines(caplog) == []

    # Failing every delivery for 35 s: one warning once it has lasted 30 s, and the end
    for _ in range(36):
        outage.failed("outbox not writable", waiting=3)
        clock.now += 1
    outage.recovered()
    lines = _lines(caplog)
    assert [level for level, _ in lines] == ["WARNING", "INFO"]
    assert lines[0][1] == "destination region is failing: outbox not writable; 3 document(s) waiting"
    assert "after 36s (36 failed tries)" in lines[1][1]


@pytest.mark.real
def test_a_journal_outage_during_intake_loses_nothing_and_is_told_in_a_few_lines(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    url = _fresh(pg_url)
    with TcpProxy("127.0.0.1", 5432) as proxy:
        config = hub_config(
            tmp_path, {"broker_url": "memory://", "journal_url": proxy.url_for(url), "queue_prefix": unique("outage")},
            connections={"ais": {"adapter": "filedrop", "inbox": "inbox", "settle_seconds": 0, "poll_interval": 0.1},
                         "region": {"adapter": "filedrop", "outbox": "outbox", "fsync": False}},
            default_route={"deliver_to": ["region"]},
        )
        inbox, outbox = config.resolve_path("inbox"), config.resolve_path("outbox")
        hub = Hub(config)
        hub.start()
        try:
            # Given a hub on PostgreSQL taking documents from a file drop
            for i in range(5):
                write_document(inbox, SampleDocument(subject=f"Преди прекъсването {i}"))
            wait_until(lambda: hub.journal.count(status="delivered") == 5, what="the first 5 delivered")

            # When the database is cut off while 20 more documents arrive, for about five seconds
            proxy.cut()
            for i in range(20):
                write_document(inbox, SampleDocument(subject=f"По време на прекъсването {i}"))
                time.sleep(0.1)
            wait_until(lambda: not list(inbox.glob("*.xml")), what="the documents claimed into .work/")
            time.sleep(3)
            proxy.restore()
            for i in range(5):
                write_document(inbox, SampleDocument(subject=f"След прекъсването {i}"))

            # Then every document is delivered once, and nothing is left in the inbox or .work/
            wait_until(lambda: hub.journal.count(status="delivered") == 30, timeout=90, what="all 30 delivered")
        finally:
            hub.stop()
    assert len(list(outbox.glob("*.xml"))) == 30
    assert not list(inbox.glob("*.xml")) and not list((inbox / ".work").iterdir())
    assert len(list((inbox / "processed").iterdir())) == 30

    # And the log tells the outage in a few lines (per part of the hub, not per document), no traceback
    records = [r for r in caplog.records if r.name.startswith("kurier")]
    loud = [r for r in records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert 1 <= len(loud) <= 12, "\n".join(r.getMessage() for r in loud)
    texts = [r.getMessage() for r in records]
    assert any("handing documents to the hub is failing: the journal database is unavailable" in t for t in texts)
    assert any("handing documents to the hub works again after" in t and "document(s) waited" in t for t in texts)
