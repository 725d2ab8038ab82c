"""SEOS evidence in the journal: every message sent and received, byte for byte, sealed, and written out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update
from typer.testing import CliRunner

from router.cli import app
from router.journal import Journal, StageEvent
from router.journal.tables import wire_messages
from router.journal.wire import WireRecord
from tests.helpers import envelope
from tests.seal_fixtures import sealed_journal  # noqa: F401 (the fixture)

runner = CliRunner()

REQUEST = ('<?xml version="1.0" encoding="utf-8"?><Message xmlns="http://schemas.egov.bg/messaging/v1">'
           "<Header><MessageType>MSG_DocumentRegistrationRequest</MessageType></Header>"
           "<Body>Заявление за достъп до обществена информация</Body></Message>\r\n").encode()
ANSWER = REQUEST.replace(b"MSG_DocumentRegistrationRequest", b"MSG_DocumentStatusResponse")


@pytest.fixture
def journal(sealed_journal: Journal) -> Journal:  # noqa: F811 (the imported fixture, by name)
    return sealed_journal


def _exchange(journal: Journal) -> str:
    env = envelope()
    journal.accept([env], [StageEvent("receive", "ok")])
    at = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    big = REQUEST + b"<!--" + b"A" * (3 * 1024 * 1024) + b"-->"  # more than MariaDB's BLOB (64 KB) holds
    journal.record_wire(WireRecord(env.id, at, "out", "MSG_DocumentRegistrationRequest", "{m-1}", "seos",
                                   "https://peer.example/seos/121759222", big, b"\x30\x82tls-cert"))
    journal.record_wire(WireRecord(env.id, at + timedelta(milliseconds=40), "in", "MSG_DocumentStatusResponse",
                                   "{m-2}", "seos", "https://peer.example/seos/121759222", ANSWER))
    return env.id


def test_each_message_is_kept_byte_for_byte_with_the_peers_certificate(journal: Journal) -> None:
    # Given a registration request sent (3 MB) and its answer received for one document
    envelope_id = _exchange(journal)
    # Then the journal gives both back, in order, exactly as they went over the wire
    out, back = journal.wire(envelope_id)
    assert (out.direction, back.direction) == ("out", "in")
    assert out.data.startswith(REQUEST) and len(out.data) > 3 * 1024 * 1024 and back.data == ANSWER
    assert out.tls_certificate == b"\x30\x82tls-cert" and back.tls_certificate is None
    assert out.at == datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def _config(tmp_path: Path, journal: Journal) -> Path:
    path = tmp_path / "kurier.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "journal_url": journal.url}), "utf-8")
    return path


def test_a_changed_byte_of_a_stored_message_breaks_the_sealed_chain(journal: Journal, tmp_path: Path) -> None:
    envelope_id = _exchange(journal)
    config = str(_config(tmp_path, journal))
    # Given the messages sealed
    assert runner.invoke(app, ["journal", "seal", "-c", config]).exit_code == 0
    assert runner.invoke(app, ["journal", "verify", "-c", config, "--json"]).exit_code == 0
    # When one byte of the stored answer is changed
    with journal.engine.begin() as conn:
        conn.execute(update(wire_messages).where(wire_messages.c.direction == "in")
                     .values(data=ANSWER.replace("Заявление".encode(), "Заявлениe".encode())))
    # Then verification names the row
    result = runner.invoke(app, ["journal", "verify", "-c", config, "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and "wire_messages row" in report["first_row"] and "changed" in report["first_row"]
    assert envelope_id


def test_kurier_messages_wire_writes_each_message_as_its_own_file(journal: Journal, tmp_path: Path) -> None:
    envelope_id = _exchange(journal)
    config = str(_config(tmp_path, journal))
    # When an operator asks for the evidence of the document
    result = runner.invoke(app, ["messages", "wire", envelope_id, "--out", str(tmp_path / "evidence"), "-c", config])
    assert result.exit_code == 0, result.output
    # Then each message is a file named by time, direction and type, holding exactly the bytes sent or received
    # (MariaDB keeps whole seconds: the journal's id after the time keeps the order there too)
    xml = sorted((tmp_path / "evidence").glob("*.xml"))
    assert all(p.name.startswith("20261202T093000.") for p in xml)
    assert xml[0].name.endswith("_out_MSG_DocumentRegistrationRequest.xml")
    assert xml[1].name.endswith("_in_MSG_DocumentStatusResponse.xml") and xml[1].read_bytes() == ANSWER
    assert xml[0].read_bytes().startswith(REQUEST)
    # and the TLS peer's certificate of the request beside it
    assert xml[0].with_suffix(".cer").read_bytes() == b"\x30\x82tls-cert"
    # A document without SEOS messages is told as such
    other = runner.invoke(app, ["messages", "wire", "0" * 32, "--out", str(tmp_path / "none"), "-c", config])
    assert other.exit_code == 1 and "no SEOS messages" in other.output


def test_messages_list_json_is_an_array_of_documents_for_scripts(journal: Journal, tmp_path: Path) -> None:
    envelope_id = _exchange(journal)
    result = runner.invoke(app, ["messages", "list", "--json", "-c", str(_config(tmp_path, journal))])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and envelope_id in [r["id"] for r in rows]
    row = next(r for r in rows if r["id"] == envelope_id)
    assert row["status"] == "received" and datetime.fromisoformat(row["created_at"])
