"""SEOS messages: every type built validates against the official schema, reads back equal, maps to an envelope."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tracemalloc
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO

import pytest
from lxml import etree

from router.store import FileStore
from schemas.envelope import AttachmentRef, Correspondent, CorrespondentKind, Envelope, Party
from schemas.errors import Permanent, Refused
from schemas.seos import (
    DocumentNumber,
    DocumentRegistrationRequest,
    build_message,
    envelope_from_message,
    message_from_envelope,
    parse_message,
    read_message,
    write_message,
)
from signing.xmldsig import sign_seos_message, verify_seos_message
from tests.seos_fixtures import PDF, RECIPIENT, SENDER, registration, the_four
from tests.xmlsig_fixtures import EIK, SignerPki, pki, seos_message, seos_schema

__all__ = ["pki"]  # the session fixture, imported so pytest finds it

NS = "http://schemas.egov.bg/messaging/v1"
DURI = "http://ereg.egov.bg/segment/0009-000001"



@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> etree.XMLSchema:
    return seos_schema(tmp_path_factory.mktemp("seos-xsd"))


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


# --- building -----------------------------------------------------------------------------------------


def test_every_message_type_built_validates_against_the_official_schema(
        store: FileStore, schema: etree.XMLSchema) -> None:
    for message in the_four(store):
        # When each of the four message types is built
        data = build_message(message, store=store)
        root = etree.fromstring(data)
        # Then it is schema-valid, version "1", with its MessageType, GUIDs in braces
        assert schema.validate(root), (message.message_type, schema.error_log)
        assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
        assert root.findtext(f"{{{NS}}}Header/{{{NS}}}Version") == "1"
        assert root.findtext(f"{{{NS}}}Header/{{{NS}}}MessageType") == message.message_type.value
        assert root.findtext(f"{{{NS}}}Header/{{{NS}}}MessageGUID") == "{11111111-2222-4333-8444-555555555555}"


def test_a_registration_request_carries_the_document_in_schema_order_with_the_file_inline(store: FileStore) -> None:
    root = etree.fromstring(build_message(registration(store), store=store))
    doc = root.find(f"{{{NS}}}Body/{{{NS}}}DocumentRegistrationRequest/{{{NS}}}Document")
    assert [etree.QName(c).localname for c in doc] == [
        "DocID", "DocParentID", "DocKind", "DocCorrespondentList", "DocAttachmentList", "DocAbout", "DocService",
        "DocComment", "DocReqDateClose", "DocAttentionTo"]
    assert doc.findtext(f"{{{NS}}}DocCorrespondentList/{{{NS}}}Corespondent/{{{NS}}}CorName") == "Иван Иванов"
    uri = doc.find(f"{{{NS}}}DocParentID/{{{NS}}}DocumentURI")
    assert uri.findtext(f"{{{DURI}}}SequenceNumber") == "345"
    assert doc.findtext(f"{{{NS}}}DocID/{{{NS}}}DocumentGUID") == "{aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee}"
    body = doc.findtext(f"{{{NS}}}DocAttachmentList/{{{NS}}}Attachment/{{{NS}}}AttBody")
    assert base64.b64decode(body) == PDF


def test_building_an_attachment_missing_from_the_store_names_it(store: FileStore, tmp_path: Path) -> None:
    message = registration(store)
    with pytest.raises(Permanent, match=r"молба\.pdf"):
        build_message(message, store=FileStore(tmp_path / "empty"))


class Trickle(io.BytesIO):
    """A stream that answers every read with at most 1000 bytes, as a socket or an object store may."""

    def read(self, size: int | None = -1, /) -> bytes:
        return super().read(1000 if size is None or size < 0 else min(size, 1000))


class TricklingStore(FileStore):
    def open(self, sha256: str) -> BinaryIO:
        return Trickle(self.read_bytes(sha256))


def test_an_attachment_read_from_a_store_in_short_pieces_is_written_intact(tmp_path: Path) -> None:
    # Given a store whose streams return short reads (not whole base64 triplets)
    store = TricklingStore(tmp_path / "store")
    data = os.urandom(10_001)
    stored = store.put_bytes(data)
    message = registration(store)
    document = message.body.document.model_copy(update={"attachments": [AttachmentRef(  # type: ignore[union-attr]
        file_name="a.bin", size=stored.size, sha256=stored.sha256)]})
    message = message.model_copy(update={"body": DocumentRegistrationRequest(document=document, comment="")})
    # When it is written, Then the body decodes to the very bytes
    back = parse_message(build_message(message, store=store), store=FileStore(tmp_path / "other"))
    assert back == message


# --- reading back -------------------------------------------------------------------------------------


def test_each_message_type_reads_back_equal(store: FileStore) -> None:
    for message in the_four(store):
        assert parse_message(build_message(message, store=store), store=store) == message


def test_a_peer_message_parses_and_maps_to_an_envelope_with_cyrillic_intact(store: FileStore) -> None:
    # Given a registration request as a .NET peer sends it: Version "1.0", a local time without zone
    message = parse_message(seos_message(), store=store)
    # When it is mapped to the canonical envelope
    env = envelope_from_message(message, source="seos")
    # Then the parties, the document and its file are there, letters intact
    assert message.header.message_guid == "{11111111-2222-4333-8444-555555555555}"
    assert message.header.message_date == datetime(2026, 12, 1, 10, 0)
    assert env.sender == Party(eik=EIK, guid="{0f3a2c5e-8d41-4b7e-9c2a-1d5e6f708192}", name="Община Тест")
    assert env.recipient.name == "Областна администрация Тест" and env.recipient.eik == "000695114"
    assert env.document_guid == "{aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee}"
    assert (env.reg_number, env.reg_date) == ("ОА-01-123", date(2026, 12, 1))
    assert env.kind == "Молба" and env.subject == "Молба за издаване на удостоверение"
    (att,) = env.attachments
    assert att.file_name == "molba.pdf" and att.mime_type == "application/pdf"
    assert store.read_bytes(att.sha256) == PDF and att.size == len(PDF)


def test_an_envelope_goes_out_as_a_registration_request_and_comes_back_the_same(
        store: FileStore, schema: etree.XMLSchema) -> None:
    # Given an envelope as an AIS handed it in
    stored = store.put_bytes(PDF)
    env = Envelope(
        document_guid="{AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE}", parent_guid="{bbbbbbbb-cccc-4ddd-8eee-ffffffffffff}",
        sender=Party(eik=EIK, guid=SENDER.guid, name="Община Тест"),
        recipient=Party(eik="000695114", guid=RECIPIENT.guid, name="Областна администрация Тест"),
        kind="Заповед", subject="Заповед за проверка", reg_number="ОА-01-7", reg_date=date(2026, 11, 30),
        procedure_code="2079", service_name="Проверка", comment="Вътрешен", deadline=date(2027, 1, 10),
        correspondents=[Correspondent(name="Иван Иванов", city="София", kind=CorrespondentKind.APPLICANT)],
        attachments=[AttachmentRef(file_name="заповед.pdf", mime_type="application/pdf", size=stored.size,
                                   sha256=stored.sha256)],
    )
    # When it is sent as SEOS and read by the receiver
    data = build_message(message_from_envelope(env, comment="За сведение"), store=store)
    assert schema.validate(etree.fromstring(data)), schema.error_log
    back = envelope_from_message(parse_message(data, store=store))
    # Then the receiver's envelope says what the sender's did (its own id and reception time aside)
    fields = set(Envelope.model_fields) - {"id", "received_at", "source", "status"}
    assert {f: getattr(back, f) for f in fields} == {f: getattr(env, f) for f in fields}


def test_an_envelope_without_the_recipients_seos_guid_cannot_be_sent() -> None:
    env = Envelope(document_guid="{aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee}", kind="Молба",
                   sender=Party(eik=EIK, guid=SENDER.guid), recipient=Party(eik="000695114"))
    with pytest.raises(Refused, match="recipient needs both an EIK and a SEOS GUID"):
        message_from_envelope(env)


# --- refusing -----------------------------------------------------------------------------------------


def refused(data: bytes, store: FileStore) -> Refused:
    with pytest.raises(Refused) as caught:
        parse_message(data, store=store)
    return caught.value


def test_hostile_and_malformed_input_is_refused_naming_what_is_wrong(store: FileStore) -> None:
    peer = seos_message().decode()
    cases = {
        "DOCTYPE": peer.replace('<Message', '<!DOCTYPE m [<!ENTITY x "xx">]>\n<Message', 1).replace(
            "Молба</DocKind>", "&x;</DocKind>"),
        "Message/Header is missing": peer[:peer.index("<Header>")] + peer[peer.index("</Header>") + 9:],
        "Message/Header/MessageType 'MSG_Hello' is not one of": peer.replace(
            "MSG_DocumentRegistrationRequest", "MSG_Hello"),
        "Message/Header/Sender/GUID: GUID '{0f3a2c5e-8d41-4b7e}'": peer.replace(
            "{0f3a2c5e-8d41-4b7e-9c2a-1d5e6f708192}", "{0f3a2c5e-8d41-4b7e}"),
        "Version '2' is not supported": peer.replace("<Version>1.0</Version>", "<Version>2</Version>"),
        "DocID/DocumentNumber/DocDate '01.12.2026' is not a date": peer.replace(
            "<DocDate>2026-12-01</DocDate>", "<DocDate>01.12.2026</DocDate>"),
        "Attachment[1]/AttBody is not valid base64": peer.replace("JVBERi0x", "JVB!Ri0x"),
        "must hold exactly one Error for MessageType MSG_Error": peer.replace(
            "MSG_DocumentRegistrationRequest", "MSG_Error"),
        "unexpected element 'DocSecret'": peer.replace("<DocKind>", "<DocSecret>1</DocSecret><DocKind>"),
        "not well-formed": peer.replace("</Body>", ""),
    }
    for reason, text in cases.items():
        # When a message broken that way is read, Then the refusal says what and where
        error = refused(text.encode(), store)
        assert reason in str(error), (reason, str(error))
    assert refused(cases["DOCTYPE"].encode(), store).code == "hostile-xml"
    assert refused(cases["Message/Header is missing"].encode(), store).code == "invalid-seos"


def test_guids_of_either_case_and_a_zoned_date_are_accepted_as_peers_write_them(store: FileStore) -> None:
    peer = seos_message().decode().replace("{11111111-2222-4333-8444-555555555555}",
                                           "{ABCDEF01-2222-4333-8444-555555555555}")
    peer = peer.replace("<DocDate>2026-12-01</DocDate>", "<DocDate>2026-12-01+02:00</DocDate>")
    message = parse_message(peer.encode(), store=store)
    assert message.header.message_guid == "{abcdef01-2222-4333-8444-555555555555}"
    body = message.body
    assert isinstance(body, DocumentRegistrationRequest)
    assert body.document.doc_id.number == DocumentNumber(number="ОА-01-123", doc_date=date(2026, 12, 1))


# --- signed -------------------------------------------------------------------------------------------


def test_a_signed_message_still_validates_and_parses(pki: SignerPki, store: FileStore,
                                                     schema: etree.XMLSchema) -> None:
    # Given a status response built here and signed as the caller does
    message = the_four(store)[2]
    signed = sign_seos_message(build_message(message, store=store), pki.signer)
    # Then its signature verifies, it is schema-valid, and it reads back as what was built
    assert verify_seos_message(signed, trust_roots=[pki.root]).report.ok
    assert schema.validate(etree.fromstring(signed)), schema.error_log
    assert parse_message(signed, store=store) == message


def test_a_signed_registration_request_with_its_file_reads_the_same_both_ways(
        pki: SignerPki, store: FileStore, tmp_path: Path) -> None:
    # Given a signed registration request with an attachment, on disk as received
    message = registration(store)
    signed = sign_seos_message(build_message(message, store=store), pki.signer)
    wire = tmp_path / "signed.xml"
    wire.write_bytes(signed)
    # Then the in-memory and the streaming reader both read what was built (the signature left to signing/)
    assert parse_message(signed, store=store) == message
    assert read_message(wire, store=FileStore(tmp_path / "other"), max_bytes=1 << 20) == message


def test_elements_in_the_wrong_namespace_are_refused(store: FileStore) -> None:
    # Given a peer that puts the register URI's parts in the SEOS namespace (schema-invalid)
    peer = seos_message().decode().replace(
        "<DocumentNumber><DocNumber>ОА-01-123</DocNumber><DocDate>2026-12-01</DocDate></DocumentNumber>",
        "<DocumentURI><RegisterIndex>1</RegisterIndex></DocumentURI>")
    # Then the refusal names the element and its namespace
    error = refused(peer.encode(), store)
    assert "DocID/DocumentURI has an unexpected element 'RegisterIndex'" in str(error)
    assert "http://schemas.egov.bg/messaging/v1" in str(error)


# --- large attachments --------------------------------------------------------------------------------


def test_a_30_mb_attachment_round_trips_in_bounded_memory(tmp_path: Path, schema: etree.XMLSchema) -> None:
    # Given a 30 MB file in the sender's store
    size = 30 * 1024 * 1024
    source = tmp_path / "big.bin"
    with source.open("wb") as fh:
        for _ in range(size // (1024 * 1024)):
            fh.write(os.urandom(1024 * 1024))
    sender_store, receiver_store = FileStore(tmp_path / "sender"), FileStore(tmp_path / "receiver")
    stored = sender_store.put_file(source)
    message = registration(sender_store)
    document = message.body.document.model_copy(update={"attachments": [AttachmentRef(  # type: ignore[union-attr]
        file_name="голям.bin", size=stored.size, sha256=stored.sha256)]})
    message = message.model_copy(update={"body": DocumentRegistrationRequest(document=document, comment="")})
    wire = tmp_path / "message.xml"
    # When it is written to a file and read by the receiver, memory traced
    tracemalloc.start()
    try:
        with wire.open("wb") as out:
            write_message(message, out, store=sender_store)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        received = read_message(wire, store=receiver_store, max_bytes=2 * size, tmp_dir=tmp_path)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Then the file arrived whole, and neither side held more than a few MB of it at once
    (att,) = received.body.document.attachments  # type: ignore[union-attr]
    assert (att.sha256, att.size) == (stored.sha256, size)
    with receiver_store.path(att.sha256).open("rb") as fh:
        assert hashlib.file_digest(fh, "sha256").hexdigest() == stored.sha256
    assert received == message
    assert write_peak < 8 * 1024 * 1024 and read_peak < 8 * 1024 * 1024, (write_peak, read_peak)
    assert wire.stat().st_size > size * 4 // 3


def test_the_streaming_reader_refuses_hostile_and_broken_input_too(store: FileStore, tmp_path: Path) -> None:
    peer = seos_message().decode()
    bomb = peer.replace('<Message', '<!DOCTYPE m [<!ENTITY x "xx">]>\n<Message', 1)
    for text, reason in ((bomb, "DOCTYPE"), (peer.replace("JVBERi0x", "JVB!Ri0x"), "AttBody is not valid base64"),
                         (peer.replace("</Body>", ""), "not well-formed"),
                         (peer.replace("<MessageGUID>{11111111-2222-4333-8444-555555555555}</MessageGUID>", ""),
                          "Message/Header/MessageGUID is missing")):
        path = tmp_path / "in.xml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(Refused, match=reason):
            read_message(path, store=store, max_bytes=1 << 20)
    with pytest.raises(Refused, match="more than the 100 bytes"):
        read_message(tmp_path / "in.xml", store=store, max_bytes=100)
