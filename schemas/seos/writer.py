"""Writing a SEOS ``Message``: UTF-8 XML in the schema's namespace and element order, unsigned.

The XML is written incrementally (lxml's ``etree.xmlfile``) and each attachment is base64-encoded from
the payload store a chunk at a time straight into the output, so a 100 MB attachment is read once and
never held whole: what a message costs in memory is one chunk plus the header. The caller signs the
result (``signing.xmldsig.sign_seos_message``): this package may not import the signing layer.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, BinaryIO

from lxml import etree

from schemas.envelope import AttachmentRef, Correspondent
from schemas.errors import Permanent
from schemas.payloads import PayloadStore
from schemas.seos.model import (
    BODY_TYPES,
    DURI_NS,
    SEOS_NS,
    Document,
    DocumentId,
    DocumentNumber,
    DocumentRegistrationRequest,
    DocumentStatusRequest,
    DocumentStatusResponse,
    Entity,
    Error,
    Message,
)

__all__ = ["build_message", "write_message"]

VERSION = "1"  # what the schema says; peers' "1.0" is read, never written
#: Bytes read from the store per base64 piece: a multiple of 3, so the pieces join without padding.
_CHUNK = 3 * 256 * 1024

_Text = str | int | date | datetime | None


def build_message(message: Message, *, store: PayloadStore | None = None) -> bytes:
    """The message as UTF-8 XML bytes; ``store`` holds the attachments' bodies (needed when there are any)."""
    out = io.BytesIO()
    write_message(message, out, store=store)
    return out.getvalue()


def write_message(message: Message, out: BinaryIO, *, store: PayloadStore | None = None) -> None:
    """Write the message to ``out`` (a file or stream), streaming attachment bodies from ``store``."""
    with etree.xmlfile(out, encoding="utf-8") as xf:
        xf.write_declaration()
        _Writer(xf, store).message(message)


class _Writer:
    def __init__(self, xf: Any, store: PayloadStore | None) -> None:
        self._xf = xf
        self._store = store

    @contextmanager
    def _element(self, name: str, ns: str = SEOS_NS, nsmap: dict[str | None, str] | None = None) -> Iterator[None]:
        with self._xf.element(f"{{{ns}}}{name}", nsmap=nsmap):
            yield

    def _leaf(self, name: str, value: _Text, ns: str = SEOS_NS) -> None:
        """An element with text; None means the (optional) element is left out."""
        if value is None:
            return
        text = value.isoformat() if isinstance(value, date | datetime) else str(value)
        with self._element(name, ns):
            self._xf.write(text)

    def message(self, message: Message) -> None:
        header = message.header
        name, message_type = BODY_TYPES[type(message.body)]
        with self._element("Message", nsmap={None: SEOS_NS}):
            with self._element("Header"):
                self._leaf("Version", VERSION)
                self._leaf("MessageType", message_type.value)
                self._leaf("MessageDate", header.message_date)
                self._entity("Sender", header.sender)
                self._entity("Recipient", header.recipient)
                self._leaf("MessageGUID", header.message_guid)
            with self._element("Body"), self._element(name):
                self._body(message.body)

    def _entity(self, name: str, entity: Entity) -> None:
        with self._element(name):
            self._leaf("Identifier", entity.identifier)
            self._leaf("AdministrativeBodyName", entity.name)
            self._leaf("GUID", entity.guid)

    def _body(self, body: object) -> None:
        if isinstance(body, DocumentRegistrationRequest):
            self._document(body.document)
            self._leaf("Comment", body.comment)
        elif isinstance(body, DocumentStatusRequest):
            self._doc_id("DocID", body.doc_id)
        elif isinstance(body, DocumentStatusResponse):
            self._doc_id("DocID", body.doc_id)
            self._leaf("DocRegStatus", body.status.value)
            self._leaf("RejectionReason", body.rejection_reason)
            self._leaf("DocExpectCloseDate", body.expect_close_date)
        elif isinstance(body, Error):
            self._leaf("MessageGUID", body.message_guid)
            self._leaf("ErrorType", body.error_type.value)
            self._leaf("ErrorDescription", body.description)

    def _doc_id(self, name: str, doc_id: DocumentId | None) -> None:
        if doc_id is None:
            return
        with self._element(name):
            number = doc_id.number
            if isinstance(number, DocumentNumber):
                with self._element("DocumentNumber"):
                    self._leaf("DocNumber", number.number)
                    self._leaf("DocDate", number.doc_date)
            elif number is not None:
                # DocumentURI is a SEOS element whose children belong to the register-URI segment's namespace.
                with self._element("DocumentURI", nsmap={"duri": DURI_NS}):
                    self._leaf("RegisterIndex", number.register_index, DURI_NS)
                    self._leaf("SequenceNumber", number.sequence_number, DURI_NS)
                    self._leaf("ReceiptOrSigningDate", number.receipt_or_signing_date, DURI_NS)
            self._leaf("DocumentGUID", doc_id.guid)

    def _document(self, doc: Document) -> None:
        with self._element("Document"):
            self._doc_id("DocID", doc.doc_id)
            self._doc_id("DocParentID", doc.parent_id)
            self._leaf("DocKind", doc.kind)
            if doc.correspondents:
                with self._element("DocCorrespondentList"):
                    for cor in doc.correspondents:
                        self._correspondent(cor)
            if doc.attachments:
                with self._element("DocAttachmentList"):
                    for att in doc.attachments:
                        self._attachment(att)
            self._leaf("DocAbout", doc.about)
            if doc.service is not None:
                with self._element("DocService"):
                    self._leaf("ServiceName", doc.service.name)
                    self._leaf("ServiceType", doc.service.type)
                    self._leaf("ServiceCode", doc.service.code)
            self._leaf("DocComment", doc.comment)
            self._leaf("DocReqDateClose", doc.req_date_close)
            self._leaf("DocAttentionTo", doc.attention_to)

    def _correspondent(self, cor: Correspondent) -> None:
        with self._element("Corespondent"):  # sic: the schema spells it with one r
            self._leaf("CorName", cor.name)
            self._leaf("CorCity", cor.city)
            self._leaf("CorAddress", cor.address)
            self._leaf("CorEGN", cor.egn)
            self._leaf("CorIDCard", cor.id_card)
            self._leaf("CorBULSTAT", cor.bulstat)
            self._leaf("CorEMail", cor.email)
            self._leaf("CorPhone", cor.phone)
            self._leaf("CorMobilePhone", cor.mobile_phone)
            self._leaf("CorMOL", cor.mol)
            self._leaf("CorComment", cor.comment)
            self._leaf("CorKind", cor.kind.value if cor.kind else None)

    def _attachment(self, att: AttachmentRef) -> None:
        if self._store is None:
            raise Permanent(f"attachment {att.file_name!r}: a payload store is needed to write its body")
        with self._element("Attachment"):
            self._leaf("AttFileName", att.file_name)
            with self._element("AttBody"):
                try:
                    source = self._store.open(att.sha256)
                except FileNotFoundError:
                    raise Permanent(
                        f"attachment {att.file_name!r} ({att.sha256}) is not in the payload store") from None
                with source:
                    rest = b""  # a stream may return short reads: only whole triplets are encoded mid-body
                    while chunk := source.read(_CHUNK):
                        chunk = rest + chunk
                        whole = len(chunk) // 3 * 3
                        rest = chunk[whole:]
                        self._xf.write(base64.b64encode(chunk[:whole]).decode("ascii"))
                        self._xf.flush()  # else lxml gathers the whole output before writing it
                    self._xf.write(base64.b64encode(rest).decode("ascii"))
            self._leaf("AttComment", att.comment)
            self._leaf("AttMIMEType", att.mime_type)
