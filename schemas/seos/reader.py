"""Reading a SEOS ``Message`` from its XML tree into the typed model, refusing what is off-spec.

Every refusal is a :class:`~schemas.errors.Refused` (code ``invalid-seos``) whose reason names the
element by its path (``Message/Header/MessageGUID``), since the peer's operator has to find it in
their XML. Tolerated, as peers send them: ``Version`` "1.0", GUIDs of either case, dates with a time
zone. Not read: ``DocAddData`` (any content) and a document's own ``ds:Signature``.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from lxml import etree

from schemas.envelope import AttachmentRef, Correspondent, CorrespondentKind
from schemas.errors import Refused
from schemas.identifiers import InvalidIdentifier, normalize_guid
from schemas.payloads import StoredFile
from schemas.seos.model import (
    DURI_NS,
    SEOS_NS,
    Body,
    DocService,
    DocStatus,
    Document,
    DocumentId,
    DocumentNumber,
    DocumentRegistrationRequest,
    DocumentStatusRequest,
    DocumentStatusResponse,
    DocumentURI,
    Entity,
    Error,
    ErrorType,
    Header,
    Message,
    MessageType,
)

__all__ = ["VERSIONS", "WHITESPACE", "AttachmentBodies", "decode_base64", "message_from_tree"]

VERSIONS = frozenset({"1", "1.0"})  # the schema's "1", and the "1.0" that .NET peers write
_DS = "http://www.w3.org/2000/09/xmldsig#"
_DATE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?\s*$")
WHITESPACE = str.maketrans("", "", " \t\r\n")
_E = TypeVar("_E", bound=StrEnum)

#: Stores the n-th attachment's body (0-based), given its ``AttBody`` element and path; says where it is.
AttachmentBodies = Callable[[etree._Element, int, str], StoredFile]


def _refuse(reason: str) -> Refused:
    return Refused(f"SEOS message: {reason}", code="invalid-seos")


def decode_base64(text: str, path: str) -> bytes:
    """Strict base64 (line breaks allowed, as Java peers wrap at 76 characters)."""
    try:
        return binascii.a2b_base64(text.translate(WHITESPACE), strict_mode=True)
    except binascii.Error as exc:
        raise _refuse(f"{path} is not valid base64 ({exc})") from None


class _At:
    """An element and its path, with look-ups that refuse naming the path."""

    def __init__(self, element: etree._Element, path: str, allowed: tuple[str, ...]) -> None:
        self.el, self.path = element, path
        for child in element:
            if not isinstance(child.tag, str):
                continue
            qname = etree.QName(child)
            if qname.localname not in allowed or qname.namespace != _namespace(qname.localname):
                raise _refuse(f"{path} has an unexpected element {qname.localname!r} (namespace {qname.namespace})")

    def find(self, name: str, ns: str = SEOS_NS) -> etree._Element | None:
        found = self.el.findall(f"{{{ns}}}{name}")
        if len(found) > 1:
            raise _refuse(f"{self.path}/{name} occurs {len(found)} times; once is allowed")
        return found[0] if found else None

    def need(self, name: str, ns: str = SEOS_NS) -> etree._Element:
        found = self.find(name, ns)
        if found is None:
            raise _refuse(f"{self.path}/{name} is missing")
        return found

    def sub(self, name: str, allowed: tuple[str, ...], *, required: bool = True) -> _At | None:
        found = self.need(name) if required else self.find(name)
        return None if found is None else _At(found, f"{self.path}/{name}", allowed)

    def text(self, name: str, ns: str = SEOS_NS) -> str:
        return (self.need(name, ns).text or "").strip()

    def opt_text(self, name: str, ns: str = SEOS_NS) -> str | None:
        found = self.find(name, ns)
        return None if found is None else (found.text or "").strip()

    def guid(self, name: str) -> str:
        return _guid(self.text(name), f"{self.path}/{name}")

    def day(self, name: str, ns: str = SEOS_NS) -> date | None:
        text = self.opt_text(name, ns)
        if text is None:
            return None
        match = _DATE.match(text)
        try:
            if match:
                return date.fromisoformat(match.group(1))
        except ValueError:
            pass
        raise _refuse(f"{self.path}/{name} {text!r} is not a date (YYYY-MM-DD)")

    def need_day(self, name: str) -> date:
        value = self.day(name)
        if value is None:
            raise _refuse(f"{self.path}/{name} is missing")
        return value

    def positive(self, name: str, ns: str) -> int | None:
        text = self.opt_text(name, ns)
        if text is None:
            return None
        if not re.fullmatch(r"\+?[0-9]+", text) or int(text) < 1:
            raise _refuse(f"{self.path}/{name} {text!r} is not a positive integer")
        return int(text)


def _namespace(localname: str) -> str:
    """The namespace an element of that name must be in: the register URI's parts and ds:Signature aside, SEOS's."""
    if localname == "Signature":
        return _DS
    return DURI_NS if localname in _URI_PARTS else SEOS_NS


def _guid(text: str, path: str) -> str:
    try:
        return normalize_guid(text)
    except InvalidIdentifier as exc:
        raise _refuse(f"{path}: {exc}") from None


def _choice(text: str, kind: type[_E], path: str) -> _E:
    try:
        return kind(text)
    except ValueError:
        allowed = ", ".join(v.value for v in kind)
        raise _refuse(f"{path} {text!r} is not one of {allowed}") from None


_URI_PARTS = ("RegisterIndex", "SequenceNumber", "ReceiptOrSigningDate")
_ENTITY = ("Identifier", "AdministrativeBodyName", "GUID")
_DOC_ID = ("DocumentNumber", "DocumentURI", "DocumentGUID")
_DOCUMENT = ("DocID", "DocParentID", "DocKind", "DocCorrespondentList", "DocAttachmentList", "DocAbout",
             "DocService", "DocComment", "DocAddData", "DocReqDateClose", "DocAttentionTo", "Signature")
_CORRESPONDENT = ("CorName", "CorCity", "CorAddress", "CorEGN", "CorIDCard", "CorBULSTAT", "CorEMail", "CorPhone",
                  "CorMobilePhone", "CorMOL", "CorComment", "CorKind")
_BODIES = {
    MessageType.REGISTRATION_REQUEST: "DocumentRegistrationRequest",
    MessageType.STATUS_REQUEST: "DocumentStatusRequest",
    MessageType.STATUS_RESPONSE: "DocumentStatusResponse",
    MessageType.ERROR: "Error",
}


def message_from_tree(root: etree._Element, bodies: AttachmentBodies) -> Message:
    """The typed message of a parsed ``Message`` tree; ``bodies`` stores each attachment's body."""
    if root.tag != f"{{{SEOS_NS}}}Message":
        raise _refuse(f"the root element is {root.tag!r}, not Message in {SEOS_NS}")
    msg = _At(root, "Message", ("Header", "Body", "Signature"))
    head = msg.sub("Header", ("Version", "MessageType", "MessageDate", "Sender", "Recipient", "MessageGUID"))
    body = msg.sub("Body", tuple(_BODIES.values()))
    assert head is not None and body is not None  # required
    version = head.text("Version")
    if version not in VERSIONS:
        raise _refuse(f"Message/Header/Version {version!r} is not supported (SEOS is version \"1\")")
    message_type = _choice(head.text("MessageType"), MessageType, "Message/Header/MessageType")
    header = Header(message_date=_datetime(head.text("MessageDate"), "Message/Header/MessageDate"),
                    sender=_entity(head, "Sender"), recipient=_entity(head, "Recipient"),
                    message_guid=head.guid("MessageGUID"))
    present = [etree.QName(c).localname for c in body.el if isinstance(c.tag, str)]
    expected = _BODIES[message_type]
    if present != [expected]:
        raise _refuse(f"Message/Body must hold exactly one {expected} for MessageType {message_type}, "
                      f"not {', '.join(present) or 'nothing'}")
    return Message(header=header, body=_body(message_type, body, bodies))


def _datetime(text: str, path: str) -> datetime:
    try:
        if "T" in text:
            return datetime.fromisoformat(text)
    except ValueError:
        pass
    raise _refuse(f"{path} {text!r} is not a date and time (YYYY-MM-DDThh:mm:ss)")


def _entity(head: _At, name: str) -> Entity:
    at = head.sub(name, _ENTITY)
    assert at is not None
    return Entity(identifier=at.text("Identifier"), name=at.text("AdministrativeBodyName"), guid=at.guid("GUID"))


def _body(message_type: MessageType, body: _At, bodies: AttachmentBodies) -> Body:
    path = f"{body.path}/{_BODIES[message_type]}"
    if message_type is MessageType.REGISTRATION_REQUEST:
        at = body.sub("DocumentRegistrationRequest", ("Document", "Comment"))
        assert at is not None
        return DocumentRegistrationRequest(document=_document(at, bodies), comment=at.text("Comment"))
    if message_type is MessageType.STATUS_REQUEST:
        at = body.sub("DocumentStatusRequest", ("DocID",))
        assert at is not None
        return DocumentStatusRequest(doc_id=_doc_id(at, "DocID"))
    if message_type is MessageType.STATUS_RESPONSE:
        at = body.sub("DocumentStatusResponse",
                      ("DocID", "DocRegStatus", "RejectionReason", "DocExpectCloseDate", "DocAddData"))
        assert at is not None
        return DocumentStatusResponse(
            doc_id=_doc_id(at, "DocID"), status=_choice(at.text("DocRegStatus"), DocStatus, f"{path}/DocRegStatus"),
            rejection_reason=at.opt_text("RejectionReason"), expect_close_date=at.day("DocExpectCloseDate"))
    at = body.sub("Error", ("MessageGUID", "ErrorType", "ErrorDescription"))
    assert at is not None
    guid = at.opt_text("MessageGUID")
    return Error(error_type=_choice(at.text("ErrorType"), ErrorType, f"{path}/ErrorType"),
                 description=at.text("ErrorDescription"),
                 message_guid=None if guid is None else _guid(guid, f"{path}/MessageGUID"))


def _doc_id(parent: _At, name: str) -> DocumentId:
    at = parent.sub(name, _DOC_ID)
    assert at is not None
    number: DocumentNumber | DocumentURI | None = None
    num = at.sub("DocumentNumber", ("DocNumber", "DocDate"), required=False)
    uri = at.sub("DocumentURI", _URI_PARTS, required=False)
    if num is not None and uri is not None:
        raise _refuse(f"{at.path} has both DocumentNumber and DocumentURI; one is allowed")
    if num is not None:
        number = DocumentNumber(number=num.text("DocNumber"), doc_date=num.need_day("DocDate"))
    elif uri is not None:
        number = DocumentURI(register_index=uri.positive("RegisterIndex", DURI_NS),
                             sequence_number=uri.positive("SequenceNumber", DURI_NS),
                             receipt_or_signing_date=uri.day("ReceiptOrSigningDate", DURI_NS))
    return DocumentId(guid=at.guid("DocumentGUID"), number=number)


def _document(request: _At, bodies: AttachmentBodies) -> Document:
    doc = request.sub("Document", _DOCUMENT)
    assert doc is not None
    parent = _doc_id(doc, "DocParentID") if doc.find("DocParentID") is not None else None
    service = doc.sub("DocService", ("ServiceName", "ServiceType", "ServiceCode"), required=False)
    return Document(
        doc_id=_doc_id(doc, "DocID"), parent_id=parent, kind=doc.text("DocKind"),
        correspondents=_correspondents(doc), attachments=_attachments(doc, bodies), about=doc.opt_text("DocAbout"),
        service=None if service is None else DocService(
            name=service.text("ServiceName"), type=service.text("ServiceType"), code=service.text("ServiceCode")),
        comment=doc.opt_text("DocComment"), req_date_close=doc.day("DocReqDateClose"),
        attention_to=doc.opt_text("DocAttentionTo"),
    )


def _items(doc: _At, list_name: str, item: str) -> list[etree._Element]:
    at = doc.sub(list_name, (item,), required=False)
    if at is None:
        return []
    items = at.el.findall(f"{{{SEOS_NS}}}{item}")
    if not items:
        raise _refuse(f"{at.path} is empty; it needs at least one {item} (or leave the list out)")
    return items


def _correspondents(doc: _At) -> list[Correspondent]:
    result = []
    for n, element in enumerate(_items(doc, "DocCorrespondentList", "Corespondent"), 1):
        cor = _At(element, f"{doc.path}/DocCorrespondentList/Corespondent[{n}]", _CORRESPONDENT)
        kind = cor.opt_text("CorKind")
        result.append(Correspondent(
            name=cor.text("CorName"), city=cor.text("CorCity"), address=cor.opt_text("CorAddress"),
            egn=cor.opt_text("CorEGN"), id_card=cor.opt_text("CorIDCard"), bulstat=cor.opt_text("CorBULSTAT"),
            email=cor.opt_text("CorEMail"), phone=cor.opt_text("CorPhone"),
            mobile_phone=cor.opt_text("CorMobilePhone"), mol=cor.opt_text("CorMOL"),
            comment=cor.opt_text("CorComment"),
            kind=None if kind is None else _choice(kind, CorrespondentKind, f"{cor.path}/CorKind"),
        ))
    return result


def _attachments(doc: _At, bodies: AttachmentBodies) -> list[AttachmentRef]:
    result = []
    for n, element in enumerate(_items(doc, "DocAttachmentList", "Attachment")):
        att = _At(element, f"{doc.path}/DocAttachmentList/Attachment[{n + 1}]",
                  ("AttFileName", "AttBody", "AttComment", "AttMIMEType"))
        name = att.text("AttFileName")
        if not name:
            raise _refuse(f"{att.path}/AttFileName is empty")
        stored = bodies(att.need("AttBody"), n, f"{att.path}/AttBody")
        result.append(AttachmentRef(file_name=name, mime_type=att.text("AttMIMEType") or "application/octet-stream",
                                    size=stored.size, sha256=stored.sha256, comment=att.opt_text("AttComment")))
    return result
