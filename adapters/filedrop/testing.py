"""Sample documents for tests and ``kurier demo``: what a legacy AIS writes into a file-drop inbox.

Two simulated AIS are ready-made (a municipality writing windows-1251, a regional administration
writing UTF-8). :func:`write_document` writes a realistic document the way a careful AIS would
(attachments first, the XML last under its final name); :func:`write_bad_document` writes one of the
broken or hostile documents real inboxes receive, each refused with the code in :data:`BAD_DOCUMENTS`.
:func:`contract_peer` is the kind's harness for the adapter contract suite (:mod:`.contract`).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from adapters.filedrop.format import NS, render
from schemas.envelope import AttachmentRef, Correspondent, CorrespondentKind, Envelope, Party
from schemas.identifiers import new_guid
from schemas.payloads import PayloadStore

if TYPE_CHECKING:
    from adapters.contract import PeerContext
    from adapters.filedrop.contract import FiledropPeer

__all__ = [
    "BAD_DOCUMENTS",
    "IMPOSTOR",
    "MUNICIPALITY",
    "REGION",
    "SampleAis",
    "SampleDocument",
    "WrittenDocument",
    "contract_peer",
    "sample_pdf",
    "store_attachments",
    "write_bad_document",
    "write_document",
]


@dataclass(frozen=True)
class SampleAis:
    """A simulated AIS: whom it speaks for, and the encoding its files use."""

    name: str
    eik: str
    guid: str
    encoding: str = "utf-8"

    @property
    def party(self) -> Party:
        return Party(eik=self.eik, guid=self.guid, name=self.name)


# Made-up administrations with valid EIK check digits (domain.md §5).
MUNICIPALITY = SampleAis("Община Примерово", "000695616", "{4f1c2a7e-0b1d-4c55-9a57-1b2c3d4e5f60}", "windows-1251")
REGION = SampleAis("Областна администрация Примерна", "176035485", "{8a9b0c1d-2e3f-4a5b-8c6d-7e8f9a0b1c2d}")
IMPOSTOR = SampleAis("Някой друг", "000139224", "{0d0e0a0d-beef-4bad-8bad-0123456789ab}")

#: Deliberately bad documents, and the refusal code each one earns.
BAD_DOCUMENTS: dict[str, str] = {
    "malformed": "malformed-xml",  # the AIS crashed mid-write
    "external-entity": "hostile-xml",  # tries to read /etc/passwd
    "billion-laughs": "hostile-xml",  # entity expansion bomb
    "bad-encoding": "bad-encoding",  # windows-1251 bytes, declared UTF-8
    "path-traversal": "invalid-document",  # attachment name reaching out of the inbox
    "missing-recipient": "missing-recipient",  # parsed fine; the hub's validation refuses it
    "invalid-eik": "invalid-eik",  # parsed fine; the hub's validation refuses it
    "sender-mismatch": "sender-mismatch",  # needs an inbox configured with sender_eik
    "missing-attachment": "missing-attachment",  # refused after the inbox's patience (at least 30 s)
}


def contract_peer(name: str, ctx: PeerContext) -> FiledropPeer:
    """The contract suite's harness: a simulated AIS behind connection ``name`` (:mod:`.contract`)."""
    from adapters.filedrop.contract import FiledropPeer  # it builds on this module

    return FiledropPeer(name, ctx)


@dataclass(frozen=True)
class WrittenDocument:
    xml: Path
    document_guid: str | None  # None when the file has no DocumentGUID (the inbox derives one)
    attachments: list[Path] = field(default_factory=list)


def _pdf_text(line: str) -> bytes:
    return b"<" + line.encode("cp1251", errors="replace").hex().encode() + b"> Tj"


def sample_pdf(
    title: str = "Молба", lines: Sequence[str] = ("Уважаеми господин Кмет,", "моля да ми бъде издадено удостоверение.")
) -> bytes:
    """A tiny valid one-page PDF with Cyrillic text (Helvetica in windows-1251 order, text extractable).

    Written by hand so it is byte-for-byte reproducible (no creation dates or random IDs).
    """
    body = [b"BT /F1 16 Tf 72 770 Td " + _pdf_text(title)]
    body += [b"0 -24 Td /F1 12 Tf " + _pdf_text(line) for line in lines]
    content = b"\n".join(body) + b"\nET"
    # Glyph names for bytes 0xC0-0xFF (А..я in windows-1251), and a ToUnicode map so the text copies right.
    differences = b" ".join(b"/uni%04X" % (0x410 + i) for i in range(64))
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Kurier-cp1251 def "
        b"1 begincodespacerange <00> <FF> endcodespacerange 2 beginbfrange <20> <7E> <0020> "
        b"<C0> <FF> <0410> endbfrange endcmap CMapName currentdict /CMap defineresource pop end end"
    )

    def stream(data: bytes) -> bytes:
        packed = zlib.compress(data, 9)
        return b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(packed) + packed + b"\nendstream"

    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        stream(content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding << /Type /Encoding "
        b"/BaseEncoding /WinAnsiEncoding /Differences [192 " + differences + b"] >> /ToUnicode 6 0 R >>",
        stream(cmap),
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def store_attachments(store: PayloadStore, files: Mapping[str, bytes]) -> list[AttachmentRef]:
    """Put files into a payload store and return their references (to build envelopes for an outbox)."""
    refs = []
    for name, data in files.items():
        stored = store.put_bytes(data)
        refs.append(AttachmentRef(file_name=name, mime_type=_mime(name), size=stored.size, sha256=stored.sha256))
    return refs


def _atomic_write(path: Path, data: bytes) -> None:
    # A hidden temporary name, then a rename: the inbox never sees half a file under the real name.
    partial = path.with_name(f".{path.name}.part")
    partial.write_bytes(data)
    os.replace(partial, path)


@dataclass(frozen=True)
class SampleDocument:
    """A document as an AIS would write it; every field has a realistic default."""

    sender: SampleAis | Party | None = MUNICIPALITY  # None: no <Sender>, the inbox fills in its own
    recipient: SampleAis | Party | None = REGION
    kind: str = "Молба"
    subject: str = "Искане за издаване на удостоверение за наследници"
    reg_number: str | None = "ОА-01-123/15.12.2025"
    reg_date: date | None = date(2025, 12, 15)
    deadline: date | None = None
    document_guid: str = field(default_factory=new_guid)
    include_guid: bool = True  # False: no <DocumentGUID>, the inbox derives one from the file's bytes
    attachments: Mapping[str, bytes] | None = None  # None: one sample PDF (молба-<guid>.pdf); {} for none
    correspondents: Sequence[Correspondent] | None = None  # None: one applicant
    encoding: str | None = None  # None: the sender AIS's own
    declare_encoding: bool = True  # False: no <?xml ...?> line, the inbox's configured encoding applies
    include_digests: bool = False  # <Size>/<SHA256> per attachment, which the inbox then verifies

    def files(self) -> dict[str, bytes]:
        # The default name is unique per document: two documents in one inbox must not share a file.
        default = {f"молба-{self.document_guid[1:9]}.pdf": sample_pdf()}
        return dict(self.attachments) if self.attachments is not None else default

    def effective_encoding(self) -> str:
        return self.encoding or (self.sender.encoding if isinstance(self.sender, SampleAis) else "utf-8")

    def envelope(self) -> Envelope:
        people = (
            list(self.correspondents)
            if self.correspondents is not None
            else [
                Correspondent(
                    name="Иван Петров Иванов",
                    city="Примерово",
                    address="ул. „Васил Левски“ 1",
                    email="ivan@example.bg",
                    kind=CorrespondentKind.APPLICANT,
                )
            ]
        )
        return Envelope(
            document_guid=self.document_guid,
            sender=_party(self.sender),
            recipient=_party(self.recipient),
            kind=self.kind,
            subject=self.subject,
            reg_number=self.reg_number,
            reg_date=self.reg_date,
            deadline=self.deadline,
            correspondents=people,
            attachments=_refs(self.files()),
        )

    def xml(self) -> bytes:
        encoding = self.effective_encoding()
        data = render(
            self.envelope(), encoding=encoding, include_guid=self.include_guid, include_digests=self.include_digests
        )
        for tag, who in (("Sender", self.sender), ("Recipient", self.recipient)):
            if who is None:
                data = _without(data, tag, encoding)
        return data if self.declare_encoding else data.split(b"\n", 1)[1]


def write_document(
    inbox: Path, document: SampleDocument | None = None, *, stem: str | None = None, marker: bool = False
) -> WrittenDocument:
    """Write ``document`` the way a careful AIS does: attachments first, the XML last, each whole."""
    document = document or SampleDocument()
    return _write(
        inbox,
        stem or document.document_guid.strip("{}"),
        document.xml(),
        document.files(),
        marker,
        document.document_guid if document.include_guid else None,
    )


def write_bad_document(
    inbox: Path,
    problem: str,
    *,
    sender: SampleAis = MUNICIPALITY,
    recipient: SampleAis = REGION,
    stem: str | None = None,
) -> WrittenDocument:
    """Write one of the :data:`BAD_DOCUMENTS` (by name) into ``inbox``."""
    if problem not in BAD_DOCUMENTS:
        raise ValueError(f"unknown problem {problem!r}; choose one of {', '.join(BAD_DOCUMENTS)}")
    base = SampleDocument(sender=sender, recipient=recipient, subject=f"Проба: {problem}", encoding="utf-8")
    files = base.files()
    data = base.xml()
    if problem == "malformed":
        data = data[: len(data) // 2]
    elif problem in ("external-entity", "billion-laughs"):
        entities = (
            '<!ENTITY e SYSTEM "file:///etc/passwd">'
            if problem == "external-entity"
            else '<!ENTITY e0 "ha">'
            + "".join(f'<!ENTITY e{i} "{f"&e{i - 1};" * 10}">' for i in range(1, 10))
            + '<!ENTITY e "&e9;">'
        )
        head, rest = data.split(b"\n", 1)
        rest = rest.replace(f"<Subject>{base.subject}</Subject>".encode(), b"<Subject>&e;</Subject>")
        data = head + f"\n<!DOCTYPE Document [{entities}]>\n".encode() + rest
    elif problem == "bad-encoding":
        data = replace(base, encoding="windows-1251").xml().replace(b"windows-1251", b"utf-8", 1)
    elif problem == "path-traversal":
        data = data.replace(
            f"<FileName>{next(iter(files))}</FileName>".encode(), b"<FileName>../../../etc/passwd</FileName>"
        )
    elif problem == "missing-recipient":
        data = _without(data, "Recipient", "utf-8")
    elif problem == "invalid-eik":
        data = replace(base, recipient=Party(eik="123456789", name="Грешен ЕИК")).xml()
    elif problem == "sender-mismatch":
        data = replace(base, sender=IMPOSTOR).xml()
    if problem in (
        "malformed",
        "external-entity",
        "billion-laughs",
        "bad-encoding",
        "path-traversal",
        "missing-attachment",
    ):
        files = {}  # (an unreadable XML claims no attachments: they would only lie around in the inbox)
    return _write(inbox, stem or f"bad-{problem}-{base.document_guid[1:9]}", data, files, False, base.document_guid)


def _write(
    inbox: Path, stem: str, data: bytes, files: Mapping[str, bytes], marker: bool, guid: str | None
) -> WrittenDocument:
    inbox.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        paths.append(inbox / name)
        _atomic_write(inbox / name, content)
    _atomic_write(inbox / f"{stem}.xml", data)
    if marker:
        (inbox / f"{stem}.ready").touch()
    return WrittenDocument(inbox / f"{stem}.xml", guid, paths)


def _party(who: SampleAis | Party | None) -> Party:
    return who.party if isinstance(who, SampleAis) else who or Party()


def _refs(files: Mapping[str, bytes]) -> list[AttachmentRef]:
    return [
        AttachmentRef(file_name=name, mime_type=_mime(name), size=len(data), sha256=hashlib.sha256(data).hexdigest())
        for name, data in files.items()
    ]


def _mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _without(data: bytes, tag: str, encoding: str) -> bytes:
    root = etree.fromstring(data)
    element = root.find(f"{{{NS}}}{tag}")
    if element is not None:
        root.remove(element)
    return etree.tostring(root, encoding=encoding, xml_declaration=True, pretty_print=True)
