"""The file-drop adapter as a legacy AIS uses it: real files in a real folder, a fake hub behind it."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from adapters import build_connection, plan_connection
from adapters.base import AdapterContext, Receipt
from adapters.filedrop import FiledropOutbox, FiledropSource, Settings, create
from adapters.filedrop.claims import claim
from adapters.filedrop.format import parse, render
from adapters.filedrop.testing import (
    BAD_DOCUMENTS,
    IMPOSTOR,
    MUNICIPALITY,
    REGION,
    SampleDocument,
    sample_pdf,
    store_attachments,
    write_bad_document,
    write_document,
)
from router.store import FileStore as PayloadStore
from schemas.envelope import Envelope
from schemas.errors import ConfigError, DestinationUnavailable, KurierError, Refused, Transient
from schemas.limits import Limits as LimitsConfig
from schemas.validation import check_envelope
from tests.helpers import Clock


class FakeIntake:
    """The hub as a source sees it: validates like the hub, records submits and refusals, can be told to fail."""

    def __init__(self, store: PayloadStore, limits: LimitsConfig | None = None) -> None:
        self.store = store
        self.limits = limits or LimitsConfig()
        self.submitted: list[Envelope] = []
        self.refused: list[tuple[str, str, KurierError]] = []
        self.fail_next: list[KurierError] = []
        self.batches: list[int] = []  # the size of each submit_many call
        self._lock = threading.Lock()

    def submit(self, envelope: Envelope) -> Receipt:
        result = self.submit_many([envelope])[0]
        if isinstance(result, Refused):
            raise result
        return result

    def submit_many(self, batch: Sequence[Envelope]) -> list[Receipt | Refused]:
        with self._lock:
            self.batches.append(len(batch))
            if self.fail_next:
                raise self.fail_next.pop(0)
            results: list[Receipt | Refused] = []
            for envelope in batch:
                try:
                    check_envelope(envelope, self.limits)  # the hub's validation, which runs after parsing
                except Refused as exc:
                    self.refused.append((envelope.source, "", exc))
                    results.append(Refused(str(exc), code=exc.code, journal_id=f"journal-{len(self.refused)}"))
                    continue
                self.submitted.append(envelope)
                results.append(Receipt(envelope.id))
            return results

    def refuse(self, source: str, what: str, error: KurierError) -> str:
        with self._lock:
            self.refused.append((source, what, error))
            return f"journal-{len(self.refused)}"

    def codes(self) -> list[str]:
        return [error.code for _, _, error in self.refused]


@pytest.fixture
def ctx(tmp_path: Path) -> AdapterContext:
    return AdapterContext(data_dir=tmp_path, store=PayloadStore(tmp_path / "store"), limits=LimitsConfig())


@pytest.fixture
def intake(ctx: AdapterContext) -> FakeIntake:
    return FakeIntake(ctx.store)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def source(ctx: AdapterContext, clock: Clock, name: str = "ais-obshtina", **options: object) -> FiledropSource:
    settings = Settings.model_validate({"inbox": "inbox", "settle_seconds": 0, **options})
    return FiledropSource(name, settings, ctx, clock=clock)


def only_dir(folder: Path) -> Path:
    found = [p for p in folder.iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


# -- the format ------------------------------------------------------------------------------------
def test_utf8_document_with_cyrillic_keeps_every_field() -> None:
    doc = SampleDocument(encoding="utf-8", deadline=None)
    parsed = parse(doc.xml(), what="doc.xml", max_bytes=1 << 20)
    env = parsed.envelope
    assert env.document_guid == doc.document_guid and not parsed.guid_derived
    assert (env.kind, env.subject, env.reg_number) == ("Молба", doc.subject, "ОА-01-123/15.12.2025")
    assert env.sender.eik == MUNICIPALITY.eik and env.recipient.name == REGION.name
    assert env.correspondents[0].address == "ул. „Васил Левски“ 1"
    assert [a.file_name for a in parsed.attachments] == list(doc.files())


def test_windows1251_with_declaration_and_bulgarian_dates() -> None:
    data = SampleDocument(encoding="windows-1251").xml().replace(b"2025-12-15", b"15.12.2025")
    assert "Молба".encode("cp1251") in data  # really single-byte Cyrillic on disk
    env = parse(data, what="doc.xml", max_bytes=1 << 20).envelope
    assert env.kind == "Молба" and env.reg_date is not None and env.reg_date.isoformat() == "2025-12-15"


def test_undeclared_encoding_follows_the_inbox_setting(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    write_document(ctx.data_dir / "inbox", SampleDocument(encoding="windows-1251", declare_encoding=False))
    assert source(ctx, clock, encoding="windows-1251").poll_once(intake) == 1
    assert intake.submitted[0].subject == "Искане за издаване на удостоверение за наследници"


def test_wrong_encoding_is_refused_with_a_fix(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    # Given an AIS writing windows-1251 without saying so, into an inbox left at the UTF-8 default
    written = write_document(ctx.data_dir / "inbox", SampleDocument(encoding="windows-1251", declare_encoding=False))
    # When the inbox reads it
    source(ctx, clock).poll_once(intake)
    # Then it is refused, journaled, and the message says which encoding was expected and how to fix it
    assert intake.codes() == ["bad-encoding"] and not intake.submitted
    message = str(intake.refused[0][2])
    assert "utf-8" in message and 'encoding="windows-1251"' in message and written.xml.name in message


def test_undeclared_utf8_in_a_1251_inbox_is_not_garbled(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    # An AIS upgraded to UTF-8 without declaring it: reading it as windows-1251 would garble every letter
    write_document(ctx.data_dir / "inbox", SampleDocument(encoding="utf-8", declare_encoding=False))
    source(ctx, clock, encoding="windows-1251").poll_once(intake)
    assert intake.submitted[0].kind == "Молба"


@pytest.mark.parametrize("problem", ["external-entity", "billion-laughs"])
def test_entities_are_refused_and_nothing_leaks(
    problem: str, ctx: AdapterContext, intake: FakeIntake, clock: Clock
) -> None:
    written = write_bad_document(ctx.data_dir / "inbox", problem)
    with pytest.raises(Refused) as refused:
        parse(written.xml.read_bytes(), what=written.xml.name, max_bytes=1 << 20)
    assert refused.value.code == "hostile-xml" and "DOCTYPE" in str(refused.value)
    source(ctx, clock).poll_once(intake)
    assert intake.codes() == ["hostile-xml"] and not intake.submitted
    failed = only_dir(ctx.data_dir / "inbox" / "failed")
    for text in [str(refused.value), *(p.read_text("utf-8-sig") for p in failed.glob("*.txt"))]:
        assert "root:" not in text and "hahaha" not in text


def test_malformed_xml_names_line_and_column() -> None:
    with pytest.raises(Refused) as refused:
        parse(
            b'<?xml version="1.0"?>\n<Document xmlns="urn:kurier:filedrop:1">\n<Kind>x</Document>',
            what="doc.xml",
            max_bytes=1 << 20,
        )
    assert refused.value.code == "malformed-xml" and "line 3" in str(refused.value)


def test_oversized_xml_is_refused_before_it_is_read(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    small = AdapterContext(ctx.data_dir, ctx.store, LimitsConfig(max_xml_bytes=500))
    write_document(ctx.data_dir / "inbox")
    source(small, clock).poll_once(intake)
    assert intake.codes() == ["too-large"]


def test_path_traversal_attachment_is_refused_and_never_read(
    ctx: AdapterContext, intake: FakeIntake, clock: Clock
) -> None:
    secret = ctx.data_dir / "secret.txt"
    secret.write_text("парола", "utf-8")
    data = (
        SampleDocument(attachments={})
        .xml()
        .replace(
            b"</Document>",
            b"<Attachments><Attachment><FileName>../secret.txt</FileName></Attachment></Attachments></Document>",
        )
    )
    (ctx.data_dir / "inbox").mkdir()
    (ctx.data_dir / "inbox" / "doc.xml").write_bytes(data)
    source(ctx, clock).poll_once(intake)
    assert intake.codes() == ["invalid-document"] and "../secret.txt" in str(intake.refused[0][2])
    assert secret.read_text("utf-8") == "парола"
    assert not ctx.store.exists(hashlib.sha256(secret.read_bytes()).hexdigest())


def test_missing_guid_is_derived_from_the_file_so_rereading_gives_the_same_one() -> None:
    data = SampleDocument(include_guid=False).xml()
    first, again = (parse(data, what="a.xml", max_bytes=1 << 20) for _ in range(2))
    other = parse(data.replace("Молба".encode("cp1251"), "Жалба".encode("cp1251")), what="a.xml", max_bytes=1 << 20)
    assert first.guid_derived and first.envelope.document_guid == again.envelope.document_guid
    assert other.envelope.document_guid != first.envelope.document_guid


def test_parser_keeps_a_bad_eik_raw_for_the_hub_to_refuse(ctx: AdapterContext, clock: Clock) -> None:
    intake = FakeIntake(ctx.store)
    write_bad_document(ctx.data_dir / "inbox", "invalid-eik", stem="bad")
    source(ctx, clock).poll_once(intake)
    note = (only_dir(ctx.data_dir / "inbox" / "failed") / "bad.error.txt").read_text("utf-8-sig")
    assert "invalid-eik" in note and "journal-1" in note and "Документът е отказан" in note


def test_the_example_in_format_md_is_a_valid_document() -> None:
    text = (Path(__file__).parents[1] / "adapters" / "filedrop" / "FORMAT.md").read_text("utf-8")
    example = text.split("```xml\n", 1)[1].split("```", 1)[0].encode("utf-8")
    parsed = parse(example, what="2025-000123.xml", max_bytes=1 << 20)
    assert parsed.envelope.reg_date is not None and parsed.envelope.reg_date.isoformat() == "2025-12-15"
    assert [a.file_name for a in parsed.attachments] == ["molba.pdf", "skica.pdf"]


def test_render_then_parse_round_trips(ctx: AdapterContext) -> None:
    doc = SampleDocument(deadline=SampleDocument().reg_date)
    env = doc.envelope().model_copy(
        update={
            "attachments": store_attachments(ctx.store, doc.files()),
            "parent_guid": "{00000000-0000-4000-8000-000000000001}",
        }
    )
    back = parse(render(env, encoding="windows-1251"), what="x.xml", max_bytes=1 << 20)
    keep = {"id", "received_at", "attachments"}
    assert back.envelope.model_dump(exclude=keep) == env.model_dump(exclude=keep)
    assert (back.attachments[0].sha256, back.attachments[0].size) == (
        env.attachments[0].sha256,
        env.attachments[0].size,
    )


# -- the inbox --------------------------------------------------------------------------------------
def test_a_document_still_being_copied_waits_until_it_settles(
    ctx: AdapterContext, intake: FakeIntake, clock: Clock
) -> None:
    inbox = ctx.data_dir / "inbox"
    src = source(ctx, clock, settle_seconds=2)
    data = SampleDocument(attachments={"молба.pdf": sample_pdf()}).xml()
    # Given a slow copy: the attachment is there, the XML is half written
    inbox.mkdir(exist_ok=True)
    (inbox / "молба.pdf").write_bytes(sample_pdf())
    (inbox / "slow.xml").write_bytes(data[:100])
    assert src.poll_once(intake) == 0
    clock.now += 1.5
    with open(inbox / "slow.xml", "ab") as fh:  # the copy goes on
        fh.write(data[100:])
    assert src.poll_once(intake) == 0
    clock.now += 1.5  # 1.5 s since the last change: not yet
    assert src.poll_once(intake) == 0
    # Then it is taken only once size and mtime stood still for settle_seconds, whole and valid
    clock.now += 1.0
    assert src.poll_once(intake) == 1
    assert not intake.refused and intake.submitted[0].attachments[0].size == len(sample_pdf())


def test_a_growing_attachment_holds_the_document_back(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    inbox = ctx.data_dir / "inbox"
    src = source(ctx, clock, settle_seconds=2)
    written = write_document(inbox)
    clock.now += 5
    with open(written.attachments[0], "ab") as fh:
        fh.write(b"%more")
    assert src.poll_once(intake) == 0
    clock.now += 2
    assert src.poll_once(intake) == 1


def test_two_pollers_take_each_document_exactly_once(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    inbox = ctx.data_dir / "inbox"
    written = [
        write_document(inbox, SampleDocument(attachments={f"p{i}.pdf": sample_pdf(f"№ {i}")})) for i in range(40)
    ]
    pollers = [source(ctx, clock, name="ais"), source(ctx, clock, name="ais")]
    start = threading.Barrier(2)

    def run(poller: FiledropSource) -> None:
        start.wait()
        while poller.poll_once(intake):
            pass

    threads = [threading.Thread(target=run, args=(p,)) for p in pollers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e.document_guid for e in intake.submitted) == sorted(w.document_guid or "" for w in written)
    assert not intake.refused and len(list((inbox / "processed").iterdir())) == 40


def test_an_xml_attachment_is_not_mistaken_for_a_document(
    ctx: AdapterContext, intake: FakeIntake, clock: Clock
) -> None:
    inbox = ctx.data_dir / "inbox"
    src = source(ctx, clock)
    # Given an AIS that writes an XML attachment first, as it should, and its metadata file a little later
    inbox.joinpath("данни.xml").write_text('<?xml version="1.0"?><Заявление><Име>Иван</Име></Заявление>', "utf-8")
    assert src.poll_once(intake) == 0 and not intake.refused  # waits: its document may be on its way
    doc = SampleDocument(attachments={"данни.xml": inbox.joinpath("данни.xml").read_bytes()})
    (inbox / "doc.xml").write_bytes(doc.xml())
    # Then the two travel as one document
    assert src.poll_once(intake) == 1 and not intake.refused
    assert [a.file_name for a in intake.submitted[0].attachments] == ["данни.xml"]
    assert intake.submitted[0].attachments[0].mime_type in ("application/xml", "text/xml")


def test_a_stray_foreign_xml_is_refused_after_patience(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    inbox = ctx.data_dir / "inbox"
    src = source(ctx, clock)
    inbox.joinpath("export.xml").write_bytes(b"<Report/>")
    assert src.poll_once(intake) == 0
    clock.now += 30
    assert src.poll_once(intake) == 1 and intake.codes() == ["invalid-document"]
    assert "urn:kurier:filedrop:1" in str(intake.refused[0][2])


def test_refused_document_goes_to_failed_with_a_note(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    written = write_bad_document(ctx.data_dir / "inbox", "missing-recipient", stem="bez-poluchatel")
    assert source(ctx, clock).poll_once(intake) == 1
    # (refused by the hub's validation, which every source's documents pass: one code for it everywhere)
    assert intake.refused[0][0] == "ais-obshtina" and intake.codes() == ["missing-recipient"]
    failed = only_dir(ctx.data_dir / "inbox" / "failed")
    assert failed.name.endswith("_bez-poluchatel")
    assert (failed / "bez-poluchatel.xml").exists() and (failed / "attachments" / written.attachments[0].name).exists()
    note = (failed / "bez-poluchatel.error.txt").read_text("utf-8-sig")
    assert "Document refused" in note and "missing-recipient" in note and "recipient has neither" in note
    assert "journal-1" in note
    assert not [p for p in (ctx.data_dir / "inbox").iterdir() if p.is_file()]


def test_transient_failure_keeps_the_document_and_retries(
    ctx: AdapterContext, intake: FakeIntake, clock: Clock
) -> None:
    inbox = ctx.data_dir / "inbox"
    written = write_document(inbox)
    src = source(ctx, clock)
    intake.fail_next.append(Transient("broker down"))
    assert src.poll_once(intake) == 0
    assert not written.xml.exists() and len(list((inbox / ".work").iterdir())) == 1  # claimed, kept
    assert src.poll_once(intake) == 0 and not intake.submitted  # backing off, not hammering the hub
    clock.now += 60
    assert src.poll_once(intake) == 1
    assert [e.document_guid for e in intake.submitted] == [written.document_guid]
    assert not list((inbox / ".work").iterdir()) and not list((inbox / "failed").iterdir())
    assert (only_dir(inbox / "processed") / "attachments" / written.attachments[0].name).read_bytes() == sample_pdf()


def test_work_left_by_a_crash_is_resumed(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    # Given a poller that claimed the XML and died before moving the attachment
    inbox = ctx.data_dir / "inbox"
    written = write_document(inbox)
    crashed = claim(inbox, inbox / ".work", written.xml.name, [])
    assert crashed is not None
    crashed.release()
    # When the hub starts again
    assert source(ctx, clock).poll_once(intake) == 1
    # Then the document is submitted whole, once
    assert [e.document_guid for e in intake.submitted] == [written.document_guid]
    assert intake.submitted[0].attachments[0].sha256 == hashlib.sha256(sample_pdf()).hexdigest()
    assert not written.attachments[0].exists() and not list((inbox / ".work").iterdir())


def test_sender_must_be_the_inbox_owner(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    inbox = ctx.data_dir / "inbox"
    write_document(inbox, SampleDocument(sender=IMPOSTOR))
    anonymous = write_document(inbox, SampleDocument(sender=None))
    source(ctx, clock, sender_eik=MUNICIPALITY.eik, sender_name=MUNICIPALITY.name).poll_once(intake)
    assert intake.codes() == ["sender-mismatch"] and IMPOSTOR.eik in str(intake.refused[0][2])
    assert [e.document_guid for e in intake.submitted] == [anonymous.document_guid]
    assert (intake.submitted[0].sender.eik, intake.submitted[0].sender.name) == (MUNICIPALITY.eik, MUNICIPALITY.name)


def test_missing_attachment_is_refused_after_patience(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    write_bad_document(ctx.data_dir / "inbox", "missing-attachment")
    src = source(ctx, clock, settle_seconds=1)
    assert src.poll_once(intake) == 0
    clock.now += 29
    assert src.poll_once(intake) == 0 and not intake.refused  # the AIS may still be copying it
    clock.now += 2
    assert src.poll_once(intake) == 1 and intake.codes() == ["missing-attachment"]


def test_marker_file_is_required_when_configured(ctx: AdapterContext, intake: FakeIntake, clock: Clock) -> None:
    inbox = ctx.data_dir / "inbox"
    write_document(inbox, stem="a")
    src = source(ctx, clock, require_marker=True)
    assert src.poll_once(intake) == 0
    (inbox / "a.ready").touch()
    assert src.poll_once(intake) == 1 and (only_dir(inbox / "processed") / "a.ready").exists()


def test_document_too_big_is_refused_and_kept_out_of_the_store(
    ctx: AdapterContext, intake: FakeIntake, clock: Clock
) -> None:
    small = AdapterContext(ctx.data_dir, ctx.store, LimitsConfig(max_document_bytes=4000))
    big = os.urandom(5000)
    write_document(ctx.data_dir / "inbox", SampleDocument(attachments={"scan.tif": big}))
    source(small, clock).poll_once(intake)
    assert intake.codes() == ["too-large"] and not ctx.store.exists(hashlib.sha256(big).hexdigest())


def test_every_sample_bad_document_earns_its_code(ctx: AdapterContext, clock: Clock) -> None:
    intake = FakeIntake(ctx.store)
    for problem in BAD_DOCUMENTS:
        write_bad_document(ctx.data_dir / "inbox", problem, stem=problem)
    src = source(ctx, clock, sender_eik=MUNICIPALITY.eik)
    src.poll_once(intake)
    clock.now += 31  # the patience for the missing attachment
    src.poll_once(intake)
    codes = {
        note.parent.name.split("_", 1)[1]: note.read_text("utf-8-sig").split("Код / Code: ")[1].split("\n")[0]
        for note in (ctx.data_dir / "inbox" / "failed").glob("*/*.error.txt")
    }
    assert codes == BAD_DOCUMENTS and not intake.submitted
    assert not [p for p in (ctx.data_dir / "inbox").iterdir() if p.is_file()]  # nothing left lying around


def test_configured_by_name_with_paths_under_the_data_dir(ctx: AdapterContext) -> None:
    plan = plan_connection("ais", "filedrop", {"inbox": "in/obshtina", "outbox": "out/obshtina",
                                               "encoding": "windows-1251"})
    assert plan.roles == {"source", "destination"}
    built = build_connection(plan, ctx)
    assert isinstance(built.source, FiledropSource) and built.source.inbox == ctx.data_dir / "in" / "obshtina"
    assert (built.source.inbox / "processed").is_dir() and (built.source.inbox / "failed").is_dir()
    assert isinstance(built.destination, FiledropOutbox)
    assert built.destination.outbox == ctx.data_dir / "out" / "obshtina"
    assert plan_connection("ais", "filedrop", {"outbox": "out"}).roles == {"destination"}


def test_bad_settings_fail_at_start_up(ctx: AdapterContext) -> None:
    with pytest.raises(ConfigError, match="enconding: unknown key"):
        plan_connection("ais", "filedrop", {"inbox": "in", "enconding": "cp1251"})
    with pytest.raises(ConfigError, match="unknown encoding 'win-1251'"):
        plan_connection("ais", "filedrop", {"inbox": "in", "encoding": "win-1251"})
    with pytest.raises(ConfigError, match=r"sender_eik: .*check digit"):
        plan_connection("ais", "filedrop", {"inbox": "in", "sender_eik": "000695617"})
    with pytest.raises(ConfigError, match=r"neither|an inbox"):
        plan_connection("ais", "filedrop", {"encoding": "utf-8"})


def test_sample_pdf_is_a_valid_pdf_with_cyrillic_text() -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(sample_pdf("Заповед", ["№ 42"])))
    page = reader.root["/Pages"]["/Kids"][0]
    content = zlib.decompress(page["/Contents"].encoded_data)
    assert "Заповед".encode("cp1251").hex().encode() in content
    assert b"<C0> <FF> <0410>" in page["/Resources"]["/Font"]["/F1"]["/ToUnicode"].data


def test_running_source_thread_picks_up_documents(ctx: AdapterContext, intake: FakeIntake) -> None:
    src = FiledropSource("ais", Settings(inbox="inbox", settle_seconds=0, poll_interval=0.01), ctx)
    src.start(intake)
    try:
        written = write_document(ctx.data_dir / "inbox")
        for _ in range(500):
            if intake.submitted:
                break
            threading.Event().wait(0.01)
    finally:
        src.stop()
    assert [e.document_guid for e in intake.submitted] == [written.document_guid]


# -- the outbox -------------------------------------------------------------------------------------
def outbox_for(ctx: AdapterContext, **options: object) -> FiledropOutbox:
    destination = create("ais-oblast", Settings.model_validate({"outbox": "out", **options}), ctx).destination
    assert destination is not None
    return destination


def envelope_with_files(ctx: AdapterContext, **changes: object) -> Envelope:
    doc = replace(SampleDocument(), **changes)  # type: ignore[arg-type]
    files = {"молба.pdf": sample_pdf(), "скица.dwg": b"\x00dwg" * 100}
    return doc.envelope().model_copy(update={"attachments": store_attachments(ctx.store, files)})


def test_outbox_writes_xml_and_attachments_with_the_right_bytes(ctx: AdapterContext) -> None:
    env = envelope_with_files(ctx)
    outbox_for(ctx).deliver(env, "key-1")
    out = ctx.data_dir / "out"
    stem = env.document_guid.strip("{}")
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(
        [f"{stem}.xml", f"{stem}_молба.pdf", f"{stem}_скица.dwg"]
    )
    parsed = parse((out / f"{stem}.xml").read_bytes(), what="x", max_bytes=1 << 20)
    for spec in parsed.attachments:
        assert hashlib.sha256((out / spec.file_name).read_bytes()).hexdigest() == spec.sha256
    assert parsed.envelope.subject == env.subject
    assert not list((out / ".kurier" / "tmp").iterdir())  # nothing half-written left behind


def test_outbox_in_windows1251_is_decodable_cp1251(ctx: AdapterContext) -> None:
    env = envelope_with_files(ctx, subject="Молба за 中文 € символи")
    outbox_for(ctx, encoding="windows-1251").deliver(env, "k")
    data = (ctx.data_dir / "out" / f"{env.document_guid.strip('{}')}.xml").read_bytes()
    text = data.decode("cp1251")  # strict: every byte is valid windows-1251
    assert "encoding='windows-1251'" in text and "&#20013;&#25991;" in text
    assert parse(data, what="x", max_bytes=1 << 20).envelope.subject == "Молба за 中文 € символи"


def test_delivering_the_same_key_twice_leaves_one_copy(ctx: AdapterContext) -> None:
    env, outbox, out = envelope_with_files(ctx), outbox_for(ctx), ctx.data_dir / "out"
    outbox.deliver(env, "key-1")
    assert outbox.deliver(env, "key-1").startswith("already delivered")
    assert len([p for p in out.iterdir() if p.is_file()]) == 3
    for p in [p for p in out.iterdir() if p.is_file()]:
        p.unlink()  # the AIS took the document
    outbox.deliver(env, "key-1")
    assert not [p for p in out.iterdir() if p.is_file()]  # and it does not come back


def test_a_crash_after_the_marker_is_completed_on_redelivery(
    ctx: AdapterContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, outbox, out = envelope_with_files(ctx), outbox_for(ctx), ctx.data_dir / "out"
    # Given a delivery that staged its files and wrote its marker, then failed before moving them
    monkeypatch.setattr(
        FiledropOutbox,
        "_publish",
        lambda self, staged, marker: (_ for _ in ()).throw(OSError(5, "Input/output error", str(out))),
    )
    with pytest.raises(DestinationUnavailable, match=str(out)):
        outbox.deliver(env, "key-1")
    assert not [p for p in out.iterdir() if p.is_file()]
    monkeypatch.undo()
    # When the hub retries the delivery
    receipt = outbox.deliver(env, "key-1")
    # Then the staged document appears, exactly once
    assert "already delivered" in receipt and "3 files" in receipt
    assert len([p for p in out.iterdir() if p.is_file()]) == 3


def test_outbox_never_writes_outside_itself(ctx: AdapterContext) -> None:
    # Attachments from other sources (SEOS, a database) may carry any name
    ref = store_attachments(ctx.store, {"x": b"data"})[0]
    env = (
        SampleDocument()
        .envelope()
        .model_copy(update={"attachments": [ref.model_copy(update={"file_name": "../../etc/cron.d/x"}), ref]})
    )
    outbox_for(ctx).deliver(env, "k")
    stem = env.document_guid.strip("{}")
    names = sorted(p.name for p in (ctx.data_dir / "out").iterdir() if p.is_file())
    assert names == sorted([f"{stem}.xml", f"{stem}__.._etc_cron.d_x", f"{stem}_x"])
    assert not (ctx.data_dir / "etc").exists()


def test_unreachable_outbox_is_transient_and_names_the_path(ctx: AdapterContext) -> None:
    outbox = FiledropOutbox("ais", Settings(outbox="x"), ctx.store, ctx.data_dir / "offline-share")
    with pytest.raises(DestinationUnavailable, match="offline-share"):
        outbox.deliver(envelope_with_files(ctx), "k")
