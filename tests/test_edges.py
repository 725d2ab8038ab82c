"""Errors at the journal's edge: what one database accepts and another refuses is refused alike on all of
them, with a reason; refusals are always journaled; database errors reach callers as Kurier's errors."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from kombu import Message
from pydantic import ValidationError

from adapters.filedrop.testing import SampleDocument, write_document
from adapters.memory import sink
from router.hub import Hub
from router.journal import Journal, PlanOutcome, StageEvent
from router.journal.tables import envelope_data
from router.metrics import Metrics
from router.queues import Broker, ConfirmingPublisher, OutMessage, Topology
from router.workers import Worker
from schemas.envelope import TEXT_LIMIT, AttachmentRef, EnvelopeStatus, Party
from schemas.errors import Permanent, Refused, Transient
from tests.conftest import MYSQL_ADMIN_URL, PG_ADMIN_URL, _fresh, _scratch_database, require_service
from tests.helpers import envelope, hub_config, unique, wait_until
from tests.proxy import free_port

FOURTEEN_DIGITS = "12345678901234"


@pytest.fixture
def journal(journal_url: str) -> Iterator[Journal]:
    j = Journal(journal_url)
    j.upgrade()
    yield j
    j.dispose()


def _dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def _drop_with_kind(inbox: Path, kind: str, stem: str) -> None:
    """Drop a document whose <Kind> is ``kind`` (the sample writer itself refuses to make one that long)."""
    staging = inbox.parent / "staging"
    written = write_document(staging, SampleDocument(kind="Молба", encoding="utf-8"), stem=stem)
    data = written.xml.read_bytes().replace("<Kind>Молба</Kind>".encode(), f"<Kind>{kind}</Kind>".encode())
    written.xml.write_bytes(data)
    for path in [*written.attachments, written.xml]:  # attachments first, the XML last, as an AIS does
        path.rename(inbox / path.name)


def test_too_long_values_from_a_file_drop_are_refused_with_an_error_file_on_every_database(
    tmp_path: Path, journal_url: str
) -> None:
    # Given a hub on this database taking documents from a file drop
    config = hub_config(
        tmp_path, {"broker_url": "memory://", "journal_url": journal_url, "queue_prefix": unique("edges")},
        connections={"ais": {"adapter": "filedrop", "inbox": "inbox", "settle_seconds": 0, "poll_interval": 0.1},
                     "region": {"adapter": "filedrop", "outbox": "outbox", "fsync": False}},
        default_route={"deliver_to": ["region"]},
    )
    inbox = config.resolve_path("inbox")
    hub = Hub(config)
    hub.start()
    try:
        # When an AIS drops a document with a 14-digit EIK, one whose kind is 205 characters, and a good one
        write_document(inbox, SampleDocument(recipient=Party(eik=FOURTEEN_DIGITS, name="Грешен ЕИК")), stem="eik14")
        _drop_with_kind(inbox, "Заявление " * 20 + "12345", stem="kind205")
        write_document(inbox, SampleDocument(), stem="good")
        wait_until(lambda: len(_dirs(inbox / "failed")) == 2 and len(_dirs(inbox / "processed")) == 1,
                   what="two refused, one accepted")
        wait_until(lambda: hub.journal.count(status="delivered") == 1, what="the good one delivered")
    finally:
        hub.stop()

    # Then both are refused with an error file naming the reason, and nothing is left behind
    assert not list(inbox.glob("*.xml")) and not _dirs(inbox / ".work")
    notes = {d.name.rsplit("_", 1)[-1]: next(d.glob("*.error.txt")).read_text("utf-8-sig")
             for d in _dirs(inbox / "failed")}
    assert "Код / Code: invalid-eik" in notes["eik14"] and FOURTEEN_DIGITS in notes["eik14"]
    assert "Код / Code: invalid-document" in notes["kind205"]
    assert "kind" in notes["kind205"] and "200" in notes["kind205"]

    # And both refusals are in the journal, the EIK cut to its column there but whole in the envelope's JSON
    journal = Journal(journal_url)
    refused = journal.search(status="refused")
    assert len(refused) == 2
    by_eik = next(r for r in refused if "EIK" in (r.error or ""))
    assert by_eik.recipient_eik == FOURTEEN_DIGITS[:12] + "…"
    detail = journal.get(by_eik.id)
    assert detail is not None and detail.envelope["recipient"]["eik"] == FOURTEEN_DIGITS
    journal.dispose()


def test_every_value_the_envelope_allows_fits_the_journal_and_one_more_character_is_refused(
    journal: Journal,
) -> None:
    # Given an envelope at every limit (Cyrillic: two bytes a character in UTF-8)
    limits = {"kind": 200, "reg_number": 100, "procedure_code": 100, "source": 64, "subject": TEXT_LIMIT}
    env = envelope(**{field: "Щ" * limit for field, limit in limits.items()},
                   sender=Party(eik="000695235", name="И" * 500))

    # Then this database keeps it whole
    (outcome,) = journal.accept([env])
    detail = journal.get(outcome.envelope_id)
    assert detail is not None and detail.summary.kind == "Щ" * 200 and detail.summary.subject == "Щ" * TEXT_LIMIT
    assert detail.summary.sender_name == "И" * 500

    # And one character more is refused where the envelope is made, naming the field and the limit
    for field, limit in limits.items():
        with pytest.raises(ValidationError, match=rf"{field}\n +String should have at most {limit} characters"):
            envelope(**{field: "Щ" * (limit + 1)})
    with pytest.raises(ValidationError, match=r"name\n +String should have at most 500 characters"):
        Party(eik="000695235", name="И" * 501)


def test_the_journal_refuses_what_its_columns_cannot_hold_on_every_database(journal: Journal) -> None:
    # Given envelopes made without validation (as a copy with new values is), one with a 205-character kind
    good = envelope()
    bad = envelope().model_copy(update={"kind": "К" * 205})

    # When they are accepted together, the journal refuses the batch, naming the field and the limit
    with pytest.raises(Permanent) as refused:
        journal.accept([good, bad])
    assert refused.value.code == "journal-refused"
    assert "kind" in str(refused.value) and "205" in str(refused.value) and "200" in str(refused.value)

    # And nothing of the batch was journaled: SQLite, which would store it, is held to the same rule
    assert journal.count() == 0

    # Likewise a NUL character, which PostgreSQL cannot store in text and the others would
    with pytest.raises(Permanent, match=r"subject holds a NUL character"):
        journal.accept([envelope(subject="Относно\x00нищо")])
    assert journal.count() == 0


def test_a_refusal_is_journaled_whatever_its_values(journal: Journal) -> None:
    # Given a document refused for values no column can hold (and a NUL that PostgreSQL refuses in text)
    env = envelope().model_copy(update={
        "sender": Party.model_construct(eik="0" * 40, guid=None, name="Д" * 700),
        "reg_number": "№" * 300, "kind": "К" * 205, "subject": "Относно\x00нищо",
    })

    # When it is refused, it is journaled all the same: the row cut to fit, the JSON whole
    journal_id = journal.refuse(env, source="ais", stage="validate", error_code="invalid-eik",
                                error="sender: EIK/BULSTAT must be 9 or 13 digits")
    detail = journal.get(journal_id)
    assert detail is not None
    row = detail.summary
    assert row.status == "refused" and row.error == "sender: EIK/BULSTAT must be 9 or 13 digits"
    assert len(row.sender_eik or "") == 13 and len(row.sender_name) == 500 and row.sender_name.endswith("…")
    assert len(row.reg_number or "") == 100 and row.kind == "К" * 199 + "…" and row.subject == "Относнонищо"
    assert detail.envelope["sender"]["name"] == "Д" * 700 and detail.envelope["kind"] == "К" * 205


def test_a_batch_with_one_document_the_journal_cannot_hold_refuses_only_that_one(
    tmp_path: Path, journal_url: str
) -> None:
    name = unique("region")
    hub = Hub(hub_config(tmp_path, {"broker_url": "memory://", "journal_url": journal_url,
                                    "queue_prefix": unique("edges")},
                         connections={name: {"adapter": "memory"}}, default_route={"deliver_to": [name]}),
              with_sources=False)
    hub.start()
    try:
        bad = envelope().model_copy(update={"reg_number": "№" * 101})
        first, refused, last = hub.submit_many([envelope(), bad, envelope()])
        assert isinstance(refused, Refused) and refused.code == "journal-refused" and "reg_number" in str(refused)
        assert refused.journal_id is not None
        row = hub.journal.get(refused.journal_id)
        assert row is not None and row.summary.status == "refused" and row.summary.error == str(refused)
        wait_until(lambda: len(sink(name).delivered) == 2, what="the other two delivered")
        assert not isinstance(first, Refused) and not isinstance(last, Refused)
        assert {k.split(":")[0] for k in sink(name).delivered} == {first.envelope_id, last.envelope_id}
    finally:
        hub.stop()


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_an_unreachable_database_is_transient_and_its_password_is_not_told(dialect: str) -> None:
    scheme = "postgresql+psycopg" if dialect == "postgresql" else "mysql+pymysql"
    journal = Journal(f"{scheme}://kurier:s3cret-pw@127.0.0.1:{free_port()}/kurier")
    for call in (journal.count, journal.ping, lambda: journal.accept([envelope()]), journal.upgrade):
        with pytest.raises(Transient) as down:
            call()
        assert down.value.code == "journal-unavailable"
        assert str(down.value).startswith("the journal database is unavailable: ")
        assert "s3cret" not in str(down.value) and "Traceback" not in str(down.value)
    journal.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_a_database_that_refuses_the_query_is_a_permanent_error_naming_it(dialect: str) -> None:
    admin, host = (PG_ADMIN_URL, 5432) if dialect == "postgresql" else (MYSQL_ADMIN_URL, 3306)
    require_service(dialect, "127.0.0.1", host)
    # A database without the journal's tables (never migrated): retrying will not create them
    empty = contextlib.contextmanager(_scratch_database)
    with empty(admin, f"kurier_empty_{os.getpid()}", dialect.replace("mariadb", "mysql")) as url:
        journal = Journal(url)
        with pytest.raises(Permanent) as refused:
            journal.count()
        assert refused.value.code == "journal-refused"
        assert str(refused.value).startswith("the journal database refused the query count: ")
        assert "envelopes" in str(refused.value)
        journal.dispose()


def test_a_batch_the_journal_refuses_for_good_sets_aside_only_its_message(tmp_path: Path) -> None:
    # Given five queued messages, and a worker whose journal refuses for good what message 2 asks of it
    config = hub_config(tmp_path, {"broker_url": "memory://", "journal_url": f"sqlite:///{tmp_path / 'j.sqlite3'}",
                                   "queue_prefix": unique("set-aside")})
    topology = Topology(config.queue_prefix, [])
    broker = Broker("memory://", topology)
    broker.declare()
    with broker.connect() as conn:
        ConfirmingPublisher(conn, topology).publish([OutMessage("inbound", {"n": n}) for n in range(5)])
    handled: list[int] = []

    class RefusingWorker(Worker):
        def handle(self, batch: Sequence[Message]) -> list[OutMessage]:
            if any(m.payload["n"] == 2 for m in batch):
                raise Permanent("the journal database refused the processing outcome(s): value too long",
                                code="journal-refused")
            handled.extend(m.payload["n"] for m in batch)
            return []

    stop = threading.Event()
    journal = Journal(config.resolved_journal_url)
    worker = RefusingWorker("process", broker, [topology.inbound], config=config, journal=journal,
                            metrics=Metrics(), stop=stop)

    # When the worker runs
    worker.start()
    try:
        wait_until(lambda: sorted(handled) == [0, 1, 3, 4], what="the four others handled")
        wait_until(lambda: broker.depths()[topology.dead.name] == 1, what="one message set aside")
    finally:
        stop.set()
        worker.join(timeout=30)
        journal.dispose()

    # Then message 2 waits in the dead-letter queue with the reason, for an operator, and nothing loops
    with broker.connect() as conn:
        dead = topology.dead.bind(conn.default_channel).get(no_ack=True)
        assert dead is not None
        assert dead.payload["reason"].startswith("[journal-refused] the journal database refused")
        assert '"n": 2' in dead.payload["body"] or '"n":2' in dead.payload["body"]
        assert broker.depths()[topology.inbound.name] == 0
    assert sorted(handled) == [0, 1, 3, 4]


def test_an_envelope_journaled_before_a_limit_existed_does_not_stop_the_sweeper(tmp_path: Path) -> None:
    # Given two envelopes received and never processed, one journaled (by SQLite) with a 205-character kind
    name = unique("region")
    config = hub_config(tmp_path, {"broker_url": "memory://", "journal_url": f"sqlite:///{tmp_path / 'j.sqlite3'}",
                                   "queue_prefix": unique("sweep")},
                        connections={name: {"adapter": "memory"}}, default_route={"deliver_to": [name]})
    journal = Journal(config.resolved_journal_url)
    journal.upgrade()
    old, good = envelope(), envelope()
    journal.accept([old, good])
    with journal.engine.begin() as conn:
        data = old.to_json().replace('"kind":"Заповед"', '"kind":"' + "К" * 205 + '"')
        conn.execute(envelope_data.update().where(envelope_data.c.envelope_id == old.id).values(data=data))
    journal.dispose()

    # When the hub starts (and its sweeper re-queues what the embedded transport lost)
    hub = Hub(config, with_sources=False)
    hub.start()
    try:
        # Then the good one is processed and delivered; the other waits in the journal for an operator
        wait_until(lambda: hub.journal.statuses([good.id]).get(good.id) == "delivered", what="the good one delivered")
        assert hub.journal.statuses([old.id])[old.id] == "received"
    finally:
        hub.stop()


@pytest.mark.real
def test_on_mariadb_an_envelope_of_many_attachments_fits_as_elsewhere(mysql_url: str) -> None:
    # Given an envelope at the attachment limit (its JSON is far beyond MySQL's 64 KB TEXT)
    journal = Journal(_fresh(mysql_url))
    journal.upgrade()
    refs = [AttachmentRef(file_name=f"приложение-{i}.pdf", mime_type="application/pdf", size=1000 + i,
                          sha256=f"{i:064x}") for i in range(500)]
    big = envelope(attachments=refs)
    assert len(big.to_json()) > 65_535
    # When it is accepted, Then it is journaled whole, as on PostgreSQL and SQLite
    (outcome,) = journal.accept([big])
    assert not outcome.conflict and journal.load([big.id])[big.id].attachments == refs
    journal.dispose()


@pytest.mark.real
def test_on_mariadb_a_plan_the_database_refuses_fails_alone_with_the_reason(mysql_url: str) -> None:
    # Given two received envelopes, and a plan for one of them naming a destination too long for its column
    journal = Journal(_fresh(mysql_url))
    journal.upgrade()
    bad, good = envelope(), envelope()
    journal.accept([bad, good])
    routed = [StageEvent("route", "ok")]
    plans = [PlanOutcome(bad.id, EnvelopeStatus.ROUTED, routed, ["r" * 80]),
             PlanOutcome(good.id, EnvelopeStatus.ROUTED, routed, ["region"])]

    # When the processing batch is recorded, the batch is not lost for the good one, nor does the bad come back
    journal.record_plans(plans)
    statuses = journal.statuses([bad.id, good.id])
    assert statuses == {bad.id: "failed", good.id: "routed"}
    detail = journal.get(bad.id)
    assert detail is not None and detail.summary.error is not None
    assert detail.summary.error.startswith("the journal database refused the processing outcome(s): ")
    assert "Data too long" in detail.summary.error
    assert journal.pending_deliveries([good.id]) == [(f"{good.id}:region", good.id, "region")]
    journal.dispose()
