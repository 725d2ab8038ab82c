"""Status files as AIS vendors meet them: the format both ways, telling once per change, taking reports."""

from __future__ import annotations

import os
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters.base import AdapterContext
from adapters.filedrop import Settings, StatusPoller, create
from adapters.filedrop.status import parse_report, read_change, render_change, render_report
from adapters.filedrop.statusfiles import StatusFiles
from adapters.filedrop.testing import REGION
from router.store import FileStore
from schemas.errors import KurierError, Refused, Transient
from schemas.identifiers import new_guid
from schemas.limits import Limits
from schemas.status import RecipientStatus, StatusChange, StatusReport
from tests.helpers import Clock

GUID = "{3f2504e0-4f89-41d3-9a0c-0305e82c3301}"
AT = datetime(2025, 12, 16, 9, 30, tzinfo=UTC)  # status files carry whole seconds


class FakeReporter:
    """The hub as a status poller sees it: records reports, or fails with what it is told to."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, StatusReport]] = []
        self.fail_next: list[KurierError] = []
        self._lock = threading.Lock()

    def report(self, connection: str, report: StatusReport) -> None:
        with self._lock:
            if self.fail_next:
                raise self.fail_next.pop(0)
            self.reports.append((connection, report))


@pytest.fixture
def reporter() -> FakeReporter:
    return FakeReporter()


@pytest.fixture
def ctx(tmp_path: Path, reporter: FakeReporter) -> AdapterContext:
    return AdapterContext(tmp_path, FileStore(tmp_path / "store"), Limits(), statuses=reporter)


def change(seq: int = 7, status: RecipientStatus = RecipientStatus.REGISTERED, **fields: object) -> StatusChange:
    values: dict[str, object] = {
        "seq": seq, "envelope_id": "e" * 32, "document_guid": GUID, "source": "obshtina",
        "source_reg_number": "ОА-01-123/15.12.2025", "destination": "oblast", "recipient_eik": REGION.eik,
        "recipient_name": REGION.name, "status": status, "reg_number": "РД-12-345/16.12.2025",
        "reg_date": date(2025, 12, 16), "at": AT, **fields,
    }
    return StatusChange.model_validate(values)


def poller(ctx: AdapterContext, clock: Clock, settle: float = 1.0) -> StatusPoller:
    settings = Settings(outbox="outbox", settle_seconds=settle, poll_interval=0.5)
    return StatusPoller("oblast", settings, ctx, ctx.data_dir / "outbox" / "status", clock=clock)


def note(folder: Path) -> str:
    (entry,) = folder.iterdir()
    (text,) = entry.glob("*.txt")
    return text.read_text(encoding="utf-8-sig")


# -- the format ------------------------------------------------------------------------------------
def test_a_change_is_written_in_the_ais_encoding_and_reads_back_whole() -> None:
    data = render_change(change(), "windows-1251")
    assert data.startswith(b"<?xml version='1.0' encoding='windows-1251'?>")
    assert "Регистриран".encode("cp1251") in data  # real 1251 bytes, not character references
    told = read_change(data)
    assert (told.seq, told.document_guid, told.reg_number) == (7, GUID, "ОА-01-123/15.12.2025")
    assert (told.connection, told.recipient_eik, told.recipient_name) == ("oblast", REGION.eik, REGION.name)
    assert (told.status, told.label) == (RecipientStatus.REGISTERED, "Регистриран / Registered")
    assert (told.recipient_reg_number, told.recipient_reg_date) == ("РД-12-345/16.12.2025", date(2025, 12, 16))
    assert told.time == AT and told.journal_id == "e" * 32


def test_a_report_round_trips_and_seos_codes_are_understood() -> None:
    report = StatusReport(document_guid=GUID.upper(), status=RecipientStatus.REJECTED, reason="Липсва подпис", at=AT)
    assert parse_report(render_report(report, "windows-1251"), what="r.xml", max_bytes=10_000) == report
    seos = render_report(report).replace(b"<Code>rejected</Code>", b"<Code>DS_REJECTED</Code>")
    assert parse_report(seos, what="r.xml", max_bytes=10_000).status == RecipientStatus.REJECTED


@pytest.mark.parametrize(
    ("data", "code", "says"),
    [
        (b"<Status xmlns='urn:kurier:filedrop:1'><DocumentGUID>", "malformed-xml", "line 1"),
        (b"<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><Status/>", "hostile-xml", "DOCTYPE"),
        (b"<Status xmlns='urn:kurier:filedrop:1'><DocumentGUID>" + GUID.encode() + b"</DocumentGUID>"
         b"<Code>archived</Code></Status>", "unknown-status", "unknown status 'archived'"),
        (b"<Status xmlns='urn:kurier:filedrop:1'><DocumentGUID>" + GUID.encode() + b"</DocumentGUID>"
         b"<Code>delivered</Code></Status>", "unknown-status", "Kurier's to set"),
        (b"<Status xmlns='urn:kurier:filedrop:1'><DocumentGUID>" + GUID.encode() + b"</DocumentGUID>"
         b"<Code>registered</Code></Status>", "invalid-status", "<RegNumber>"),
        (b"<Status xmlns='urn:kurier:filedrop:1'><DocumentGUID>42</DocumentGUID><Code>closed</Code></Status>",
         "invalid-status", "<DocumentGUID>"),
        (b"<Status xmlns='urn:kurier:filedrop:1'><DocumentGUID>" + GUID.encode() + b"</DocumentGUID>"
         b"<Code>closed</Code><Numer>1</Numer></Status>", "invalid-status", "unexpected element <Numer>"),
        (b"<Document xmlns='urn:kurier:filedrop:1'/>", "invalid-status", "not <Status"),
    ],
)
def test_a_bad_report_is_refused_naming_what_to_fix(data: bytes, code: str, says: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_report(data, what="bad.xml", max_bytes=10_000)
    assert refused.value.code == code and says in str(refused.value) and "bad.xml" in str(refused.value)


def test_the_examples_in_format_md_are_valid_status_files() -> None:
    text = (Path(__file__).parents[1] / "adapters" / "filedrop" / "FORMAT.md").read_text(encoding="utf-8")
    section = text.split("## 6. Status files", 1)[1]
    told, reported = (block.split("```", 1)[0].encode("cp1251") for block in section.split("```xml\n")[1:])
    assert read_change(told).recipient_reg_number == "РД-12-345/16.12.2025"
    report = parse_report(reported, what="example", max_bytes=10_000, encoding="windows-1251")
    assert (report.status, report.reg_number, report.reg_date) == (
        RecipientStatus.REGISTERED, "РД-12-345/16.12.2025", date(2025, 12, 16))


# -- telling the submitting AIS ---------------------------------------------------------------------
def test_each_change_is_written_once_even_when_told_again_after_the_ais_took_it(tmp_path: Path) -> None:
    files = StatusFiles("obshtina", tmp_path / "status", encoding="utf-8", fsync=True)
    (tmp_path / "status").mkdir()
    written = files.write(change(seq=12))
    assert written.name == f"{GUID.strip('{}')}.12.status.xml" and read_change(written.read_bytes()).seq == 12

    # Given the AIS took the file away, When the same change is told again (a crash before the journal
    # marked it told), Then nothing is written: the AIS never sees a change twice
    written.unlink()
    files.write(change(seq=12))
    assert not list((tmp_path / "status").glob("*.xml"))
    assert not list((tmp_path / "status" / ".kurier" / "tmp").iterdir())


def test_a_crash_between_commit_and_rename_is_finished_when_told_again(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "status"
    folder.mkdir()
    files = StatusFiles("obshtina", folder, encoding="utf-8", fsync=False)
    real_replace = os.replace

    def crash(*_: object) -> None:
        raise OSError(5, "Input/output error")  # the power went just after the marker was written

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Transient, match="cannot write a status file"):
        files.write(change(seq=3))
    assert not list(folder.glob("*.xml"))
    monkeypatch.setattr(os, "replace", real_replace)
    files.write(change(seq=3))
    assert [read_change(p.read_bytes()).seq for p in folder.glob("*.status.xml")] == [3]


def test_an_unwritable_status_folder_is_transient_and_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "status").write_text("a file where the folder should be")
    files = StatusFiles("obshtina", tmp_path / "status", encoding="utf-8", fsync=False)
    with pytest.raises(Transient, match=str(tmp_path / "status")):
        files.write(change())


def test_status_files_can_be_switched_off(ctx: AdapterContext) -> None:
    quiet = create("obshtina", Settings(inbox="inbox", status_files=False), ctx)
    quiet.notify(change())
    loud = create("obshtina-2", Settings(inbox="inbox-2", encoding="windows-1251"), ctx)
    loud.notify(change())
    assert not list((ctx.data_dir / "inbox" / "status").glob("*.xml"))
    (written,) = (ctx.data_dir / "inbox-2" / "status").glob("*.status.xml")
    assert read_change(written.read_bytes()).status == RecipientStatus.REGISTERED


# -- hearing the recipient AIS ----------------------------------------------------------------------
def test_a_report_is_taken_once_settled_and_kept_in_processed(ctx: AdapterContext, reporter: FakeReporter) -> None:
    clock = Clock()
    statuses = poller(ctx, clock)
    report = StatusReport(document_guid=GUID, status=RecipientStatus.REGISTERED, reg_number="РД-12-345", at=AT)
    (statuses.folder / "reg.xml").write_bytes(render_report(report, "windows-1251"))

    assert statuses.poll_once() == 0 and not reporter.reports  # just written: it may still be being copied
    clock.now += 1.5
    assert statuses.poll_once() == 1
    assert reporter.reports == [("oblast", report)]
    assert "Статусът е приет / Status accepted" in note(statuses.processed)
    assert not list(statuses.folder.glob("*.xml")) and not list(statuses.work.iterdir())


def test_a_refused_report_goes_to_failed_with_the_reason(ctx: AdapterContext, reporter: FakeReporter) -> None:
    clock = Clock()
    statuses = poller(ctx, clock, settle=0)
    reporter.fail_next.append(Refused("oblast reported 'closed' for …, but Kurier knows no document with that "
                                      "DocumentGUID", code="unknown-document"))
    (statuses.folder / "closed.xml").write_bytes(render_report(
        StatusReport(document_guid=GUID, status=RecipientStatus.CLOSED)))
    (statuses.folder / "broken.xml").write_bytes(b"<Status xmlns='urn:kurier:filedrop:1'>")
    statuses.poll_once()
    notes = {p.parent.name.split("_", 1)[1]: p.read_text("utf-8-sig") for p in statuses.failed.glob("*/*.error.txt")}
    assert set(notes) == {"closed", "broken"}
    assert "Код / Code: unknown-document" in notes["closed"] and "knows no document" in notes["closed"]
    assert "Код / Code: malformed-xml" in notes["broken"] and "Fix the file" in notes["broken"]
    assert (next(statuses.failed.glob("*_broken")) / "broken.xml").is_file()  # kept, beside its note


def test_a_report_the_hub_cannot_take_yet_waits_and_is_retried(ctx: AdapterContext, reporter: FakeReporter) -> None:
    clock = Clock()
    statuses = poller(ctx, clock, settle=0)
    reporter.fail_next.append(Transient("its delivery through oblast is not journaled as done yet"))
    (statuses.folder / "wait.xml").write_bytes(render_report(
        StatusReport(document_guid=GUID, status=RecipientStatus.AWAITING_REGISTRATION)))
    assert statuses.poll_once() == 0 and len(list(statuses.work.iterdir())) == 1
    assert statuses.poll_once() == 0  # backing off
    clock.now += 5
    assert statuses.poll_once() == 1 and len(reporter.reports) == 1


def test_a_report_left_in_work_by_a_crash_is_taken_by_the_next_poller(ctx: AdapterContext,
                                                                      reporter: FakeReporter) -> None:
    first = poller(ctx, Clock(), settle=0)
    (first.work / "18c0ffee-abc123_late.xml").write_bytes(render_report(
        StatusReport(document_guid=GUID, status=RecipientStatus.STOPPED, reason="спряна процедура")))
    assert poller(ctx, Clock(), settle=0).poll_once() == 1
    assert reporter.reports[0][1].reason == "спряна процедура"


def test_two_pollers_report_each_file_once(ctx: AdapterContext, reporter: FakeReporter) -> None:
    a, b = poller(ctx, Clock(), settle=0), poller(ctx, Clock(), settle=0)
    guids = [new_guid() for _ in range(30)]
    for i, guid in enumerate(guids):
        (a.folder / f"s{i}.xml").write_bytes(render_report(
            StatusReport(document_guid=guid, status=RecipientStatus.REGISTERED, reg_number=f"№ {i}")))
    threads = [threading.Thread(target=p.poll_once) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.document_guid for _, r in reporter.reports) == sorted(guids)
    assert len(list(a.processed.iterdir())) == 30


def test_an_outbox_only_connection_still_hears_statuses(ctx: AdapterContext) -> None:
    connection = create("oblast", Settings(outbox="outbox"), ctx)
    assert isinstance(connection.source, StatusPoller)
    assert connection.source.folder == ctx.data_dir / "outbox" / "status" and connection.source.folder.is_dir()


def test_a_share_mounted_after_start_is_polled_once_it_is_there(ctx: AdapterContext, reporter: FakeReporter) -> None:
    (ctx.data_dir / "outbox").write_text("not mounted yet")  # a file where the folder should be
    statuses = poller(ctx, Clock(), settle=0)
    assert statuses.poll_once() == 0
    (ctx.data_dir / "outbox").unlink()
    statuses.folder.mkdir(parents=True)  # the share is mounted; the AIS writes a status file
    closed = StatusReport(document_guid=GUID, status=RecipientStatus.CLOSED)
    (statuses.folder / "late.xml").write_bytes(render_report(closed))
    assert statuses.poll_once() == 1 and reporter.reports[0][1].status == RecipientStatus.CLOSED
