"""The file drop hands documents to the hub efficiently: each XML parsed once, documents submitted in batches."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import adapters.filedrop.format as filedrop_format
import adapters.filedrop.inbox as filedrop_inbox
import adapters.filedrop.watch as filedrop_watch
from adapters.base import AdapterContext, Receipt
from adapters.filedrop import FiledropSource, Settings
from adapters.filedrop.claims import claim
from adapters.filedrop.testing import SampleDocument, sample_pdf, write_bad_document, write_document
from router.hub import Hub
from router.store import FileStore
from schemas.envelope import Envelope
from schemas.errors import Refused, Transient
from schemas.limits import Limits
from tests.helpers import delete_queues, hub_config, wait_until
from tests.test_filedrop import Clock, FakeIntake, source


@pytest.fixture
def ctx(tmp_path: Path) -> AdapterContext:
    return AdapterContext(data_dir=tmp_path, store=FileStore(tmp_path / "store"), limits=Limits())


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every XML parse the file drop makes (bytes into a tree), by file name."""
    seen: list[str] = []
    real = filedrop_format.parse_xml

    def counting(data: bytes, *, what: str, **options: Any) -> Any:
        seen.append(what)
        return real(data, what=what, **options)

    monkeypatch.setattr(filedrop_format, "parse_xml", counting)
    return seen


def _inbox_is_empty(inbox: Path) -> bool:
    return not list(inbox.glob("*.xml")) and not list((inbox / ".work").iterdir())


def test_each_document_is_parsed_once(ctx: AdapterContext, parses: list[str]) -> None:
    clock, intake, inbox = Clock(), FakeIntake(ctx.store), ctx.data_dir / "inbox"
    src = source(ctx, clock, settle_seconds=1)
    # Given 20 documents and a refused one, and a 21st whose attachment is still being copied
    written = [write_document(inbox, SampleDocument(subject=f"Писмо № {i}"), stem=f"doc-{i}") for i in range(20)]
    write_bad_document(inbox, "invalid-eik", stem="bad")
    slow = write_document(inbox, SampleDocument(subject="Бавно копиране"), stem="slow")
    assert src.poll_once(intake) == 0  # nothing settled yet
    # When the inbox is polled while the copy goes on, and after it ends
    handled = []
    for _ in range(3):
        clock.now += 1
        with open(slow.attachments[0], "ab") as fh:
            fh.write(b"%more")
        handled.append(src.poll_once(intake))
    clock.now += 2
    handled.append(src.poll_once(intake))
    # Then the others went at the first poll, the slow one once it settled, and each XML was parsed once
    assert handled == [21, 0, 0, 1]
    assert sorted(parses) == sorted([w.xml.name for w in written] + ["bad.xml", "slow.xml"])
    assert len(intake.submitted) == 21 and intake.codes() == ["invalid-eik"] and _inbox_is_empty(inbox)


def test_a_document_resumed_from_work_is_parsed_once_there(ctx: AdapterContext, parses: list[str]) -> None:
    # Given a poller that claimed a document and died (its parse died with it)
    inbox = ctx.data_dir / "inbox"
    written = write_document(inbox, stem="crashed")
    left = claim(inbox, inbox / ".work", written.xml.name, [])
    assert left is not None
    left.release()
    # When the hub starts again, Then the document is parsed once, in .work/, and accepted
    intake = FakeIntake(ctx.store)
    assert source(ctx, Clock()).poll_once(intake) == 1
    assert parses == ["crashed.xml"] and [e.document_guid for e in intake.submitted] == [written.document_guid]


def test_a_document_rewritten_after_it_was_read_is_read_again(
    ctx: AdapterContext, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an AIS that rewrites a settled XML just after the inbox read it, before the claim
    inbox, intake = ctx.data_dir / "inbox", FakeIntake(ctx.store)
    write_document(inbox, SampleDocument(subject="Старо"), stem="doc")
    real_claim = filedrop_inbox.claim

    def rewritten_first(*args: Any, **kwargs: Any) -> Any:
        write_document(inbox, SampleDocument(subject="Ново, по-дълго съдържание"), stem="doc")
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(filedrop_inbox, "claim", rewritten_first)
    # When it is claimed, Then what is submitted is the new content, parsed again for it
    assert source(ctx, Clock()).poll_once(intake) == 1
    assert [e.subject for e in intake.submitted] == ["Ново, по-дълго съдържание"] and parses == ["doc.xml"] * 2


def test_a_backlog_beyond_the_memory_budget_is_parsed_again_when_claimed(
    ctx: AdapterContext, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an inbox whose backlog is larger than the parses the watcher keeps (here: about two documents)
    inbox, intake = ctx.data_dir / "inbox", FakeIntake(ctx.store)
    written = [write_document(inbox, SampleDocument(subject=f"№ {i}"), stem=f"doc-{i}") for i in range(5)]
    monkeypatch.setattr(filedrop_watch, "KEEP_XML_BYTES", 2 * written[0].xml.stat().st_size + 100)
    # When it is taken in, Then every document is accepted whole, those beyond the budget parsed a second time
    assert source(ctx, Clock()).poll_once(intake) == 5
    assert sorted(e.document_guid for e in intake.submitted) == sorted(w.document_guid or "" for w in written)
    assert all(len(e.attachments) == 1 for e in intake.submitted) and len(parses) == 5 + 3


@pytest.mark.parametrize("batch", [200, 20])
def test_a_poll_submits_its_documents_together(
    ctx: AdapterContext, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    monkeypatch.setattr(filedrop_inbox, "BATCH", batch)
    clock, intake, inbox = Clock(), FakeIntake(ctx.store), ctx.data_dir / "inbox"
    for i in range(50):
        write_document(inbox, SampleDocument(attachments={f"p{i}.pdf": sample_pdf(f"№ {i}")}))
    src = source(ctx, clock)
    while src.poll_once(intake):
        pass
    assert intake.batches == [min(batch, 50 - n) for n in range(0, 50, batch)]
    assert len(intake.batches) == math.ceil(50 / batch) and len(intake.submitted) == 50
    assert len(list((inbox / "processed").iterdir())) == 50 and _inbox_is_empty(inbox)


def test_a_failed_batch_stays_claimed_and_is_submitted_again_once(ctx: AdapterContext) -> None:
    clock, intake, inbox = Clock(), FakeIntake(ctx.store), ctx.data_dir / "inbox"
    written = [write_document(inbox, SampleDocument(subject=f"№ {i}")) for i in range(50)]
    src = source(ctx, clock)
    # Given the hub unavailable for the first submit
    intake.fail_next.append(Transient("journal unavailable"))
    assert src.poll_once(intake) == 0
    # Then all 50 stay claimed in .work/, none back in the inbox, none accepted
    assert len(list((inbox / ".work").iterdir())) == 50 and not list(inbox.glob("*.xml")) and not intake.submitted
    assert src.poll_once(intake) == 0 and intake.batches == [50]  # backing off, not hammering the hub
    # When the back-off has passed, Then they go in together, once each
    clock.now += 61
    assert src.poll_once(intake) == 50 and intake.batches == [50, 50]
    assert sorted(e.document_guid for e in intake.submitted) == sorted(w.document_guid or "" for w in written)
    assert _inbox_is_empty(inbox)


@pytest.fixture
def hub(tmp_path: Path, backend: dict[str, str]) -> Iterator[Hub]:
    config = hub_config(tmp_path, backend,
                        connections={"ais": {"adapter": "filedrop", "inbox": "inbox", "settle_seconds": 0},
                                     "region": {"adapter": "filedrop", "outbox": str(tmp_path / "outbox"),
                                                "fsync": False}},
                        default_route={"deliver_to": ["region"]})
    hub = Hub(config, with_sources=False)
    hub.start()
    yield hub
    hub.stop()
    delete_queues(config)


def test_a_batch_the_hub_took_but_could_not_confirm_is_delivered_once(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = hub.config
    inbox, outbox = config.resolve_path("inbox"), tmp_path / "outbox"
    settings = Settings.model_validate({"inbox": "inbox", "settle_seconds": 0})
    clock = Clock()
    src = FiledropSource("ais", settings, AdapterContext(config.data_dir, hub.store, config.limits), clock=clock)
    guids = {write_document(inbox, SampleDocument(subject=f"Документ № {i}")).document_guid for i in range(50)}
    # Given a hub that journals and queues the batch, but whose answer is lost (a timeout after the commit)
    real, calls = hub.submit_many, []

    def answer_lost_once(batch: Sequence[Envelope]) -> list[Receipt | Refused]:
        calls.append(len(batch))
        results = real(batch)
        if len(calls) == 1:
            raise Transient("connection lost after the commit")
        return results

    monkeypatch.setattr(hub, "submit_many", answer_lost_once)
    assert src.poll_once(hub) == 0 and len(list((inbox / ".work").iterdir())) == 50
    # When the next poll submits them again
    clock.now += 61
    assert src.poll_once(hub) == 50 and calls == [50, 50]
    # Then the hub recognises every one, and each is delivered exactly once
    wait_until(lambda: len(list(outbox.glob("*.xml"))) >= 50, what="50 documents in the outbox")
    wait_until(lambda: hub.journal.count(status="delivered") == 50, what="50 delivered")
    assert {"{" + p.stem + "}" for p in outbox.glob("*.xml")} == guids and len(list(outbox.glob("*.xml"))) == 50
    notes = [p.read_text("utf-8-sig") for p in (inbox / "processed").glob("*/*.receipt.txt")]
    assert len(notes) == 50 and all("Повторен / Duplicate: True" in n for n in notes)
