"""The file-drop wire format: one metadata XML per document, attachments beside it (see FORMAT.md).

Bytes become a tree only through :func:`~schemas.xmlsafe.parse_xml`; this module maps the
tree to an :class:`Envelope` and back, and every refusal names the element to fix.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated

from lxml import etree
from pydantic import AfterValidator, ValidationError

from schemas.envelope import Correspondent, Envelope, Party
from schemas.errors import Refused
from schemas.identifiers import InvalidIdentifier, normalize_guid
from schemas.xmlsafe import parse_xml


def known_encoding(value: str) -> str:
    try:
        codecs.lookup(value)
    except LookupError:
        raise ValueError(f"unknown encoding {value!r}; use utf-8 or windows-1251") from None
    return value


#: An encoding name Python knows (checked when the configuration is loaded).
Encoding = Annotated[str, AfterValidator(known_encoding)]

__all__ = [
    "NS", "AttachmentSpec", "ParsedDocument", "Reading", "check_file_name", "parse", "parse_date", "read", "render",
]

NS = "urn:kurier:filedrop:1"
_Q = "{" + NS + "}"
# Documents without a DocumentGUID get uuid5(this, sha256(file bytes)): re-reading the same file
# (after a crash, or a resend) gives the same GUID, so the hub's deduplication still works.
_GUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, NS)

_PARTY = {"EIK": "eik", "GUID": "guid", "Name": "name"}
_CORRESPONDENT = {
    "Name": "name",
    "City": "city",
    "Address": "address",
    "EGN": "egn",
    "IDCard": "id_card",
    "BULSTAT": "bulstat",
    "EMail": "email",
    "Phone": "phone",
    "MobilePhone": "mobile_phone",
    "MOL": "mol",
    "Comment": "comment",
    "Kind": "kind",
}
_TEXT = {
    "DocumentGUID": "document_guid",
    "ParentGUID": "parent_guid",
    "Kind": "kind",
    "Subject": "subject",
    "RegNumber": "reg_number",
    "RegDate": "reg_date",
    "ProcedureCode": "procedure_code",
    "ServiceName": "service_name",
    "Comment": "comment",
    "Deadline": "deadline",
}
_ATTACHMENT = ("FileName", "MimeType", "Comment", "Size", "SHA256")


@dataclass(frozen=True)
class AttachmentSpec:
    """An attachment as the metadata file declares it (the file itself lies beside it)."""

    file_name: str
    mime_type: str | None = None
    comment: str | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class ParsedDocument:
    """The envelope (without attachments and source yet) and the files it references."""

    envelope: Envelope
    attachments: list[AttachmentSpec]
    guid_derived: bool


@dataclass(frozen=True)
class Reading:
    """What one parse of a metadata file tells: the files to claim with it, and the document or its refusal.

    ``files`` is None when the bytes are no Kurier document at all (not XML, hostile, another root): then
    nothing beside it belongs to it. A document refused for its content still lists its files, so they
    travel with it to ``failed/``.
    """

    files: list[str] | None
    result: ParsedDocument | Refused


def _root(data: bytes, what: str, max_bytes: int, encoding: str) -> etree._Element:
    root = parse_xml(data, what=what, max_bytes=max_bytes, encoding=encoding)
    if root.tag != _Q + "Document":
        raise Refused(
            f'{what}: the root element is {root.tag!r}, not <Document xmlns="{NS}">; '
            "a file-drop metadata file must use that root element and namespace",
            code="invalid-document",
        )
    return root


def _children(parent: etree._Element, allowed: Sequence[str], what: str) -> dict[str, etree._Element]:
    found: dict[str, etree._Element] = {}
    for child in parent:
        qname = etree.QName(child)
        name = qname.localname
        if name not in allowed or qname.namespace != NS:
            raise Refused(
                f"{what}: unexpected element <{name}> in <{etree.QName(parent).localname}> "
                f"(allowed: {', '.join(allowed)}; check the spelling and the namespace {NS})",
                code="invalid-document",
            )
        if name in found:
            raise Refused(
                f"{what}: <{name}> appears twice in <{etree.QName(parent).localname}>", code="invalid-document"
            )
        found[name] = child
    return found


def _text(element: etree._Element | None, what: str) -> str | None:
    if element is None:
        return None
    if len(element):
        raise Refused(f"{what}: <{etree.QName(element).localname}> must hold text only", code="invalid-document")
    value = (element.text or "").strip()
    return value or None


def parse_date(value: str | None, element: str, what: str, code: str = "invalid-document") -> date | None:
    """A date as AIS write them (``YYYY-MM-DD`` or ``DD.MM.YYYY``, a time after it ignored), or refused."""
    if value is None:
        return None
    for pattern in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            return datetime.strptime(value[:10], pattern).date()
        except ValueError:
            continue
    raise Refused(f"{what}: <{element}> {value!r} is not a date (write YYYY-MM-DD or DD.MM.YYYY)", code=code)


def check_file_name(name: str, what: str) -> str:
    """Refuse an attachment name that is not a plain file name (it could reach outside the inbox)."""
    bad = (
        not name
        or name in (".", "..")
        or any(c in name for c in "/\\:\0")
        or any(ord(c) < 32 for c in name)
        or len(name.encode("utf-8")) > 255
    )
    if bad:
        raise Refused(
            f"{what}: attachment file name {name!r} is not a plain file name (no folders, '..', "
            "drive letters or control characters); put the file beside the XML and give its name only",
            code="invalid-document",
        )
    return name


def _party(element: etree._Element | None, label: str, what: str) -> Party | None:
    if element is None:
        return None
    values = {_PARTY[k]: _text(v, what) for k, v in _children(element, tuple(_PARTY), what).items()}
    if not values.get("eik") and not values.get("guid") and not values.get("name"):
        return None  # an empty element counts as absent
    # Neither EIK nor GUID (a name only) passes: the hub's validation refuses it, with the code every
    # source's documents get for it (schemas.validation).
    try:
        return Party(eik=values.get("eik"), guid=values.get("guid"), name=values.get("name") or "")
    except ValidationError as exc:
        raise Refused(f"{what}: <{label}><GUID>: {_first_error(exc)}", code="invalid-document") from None


def _first_error(exc: ValidationError) -> str:
    return str(exc.errors()[0]["msg"]).removeprefix("Value error, ")


def _attachment(element: etree._Element, what: str) -> AttachmentSpec:
    values = {k: _text(v, what) for k, v in _children(element, _ATTACHMENT, what).items()}
    name = values.get("FileName")
    if not name:
        raise Refused(f"{what}: an <Attachment> has no <FileName>", code="invalid-document")
    size, digest = values.get("Size"), (values.get("SHA256") or "").lower() or None
    if size is not None and not size.isdigit():
        raise Refused(f"{what}: <Size> of {name!r} must be a whole number of bytes", code="invalid-document")
    if digest is not None and not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise Refused(f"{what}: <SHA256> of {name!r} must be 64 hex digits", code="invalid-document")
    return AttachmentSpec(
        check_file_name(name, what),
        values.get("MimeType"),
        values.get("Comment"),
        int(size) if size is not None else None,
        digest,
    )


def _listed(root: etree._Element, what: str) -> list[str]:
    """The attachment names a metadata file lists (plain names only): what to claim together with it."""
    names = []
    for element in root.iterfind(f"{_Q}Attachments/{_Q}Attachment/{_Q}FileName"):
        try:
            names.append(check_file_name((element.text or "").strip(), what))
        except Refused:
            continue  # _document refuses it; here we only gather what to claim with the XML
    return names


def read(
    data: bytes, *, what: str, max_bytes: int, encoding: str = "utf-8", default_sender: Party | None = None
) -> Reading:
    """Parse a metadata file once: the files it lists and the document, or why ``what`` (a file name) is refused."""
    try:
        root = _root(data, what, max_bytes, encoding)
    except Refused as exc:
        return Reading(None, exc)
    files = _listed(root, what)
    try:
        return Reading(files, _document(root, data, what, default_sender))
    except Refused as exc:
        return Reading(files, exc)


def parse(
    data: bytes, *, what: str, max_bytes: int, encoding: str = "utf-8", default_sender: Party | None = None
) -> ParsedDocument:
    """Read a metadata file, or raise :class:`Refused` naming what is wrong with ``what`` (a file name)."""
    result = read(data, what=what, max_bytes=max_bytes, encoding=encoding, default_sender=default_sender).result
    if isinstance(result, Refused):
        raise result
    return result


def _document(root: etree._Element, data: bytes, what: str, default_sender: Party | None) -> ParsedDocument:
    top = _children(root, (*_TEXT, "Sender", "Recipient", "Correspondents", "Attachments"), what)
    texts = {tag: _text(top.get(tag), what) for tag in _TEXT}
    fields: dict[str, object] = {_TEXT[tag]: value for tag, value in texts.items()}
    for tag in ("RegDate", "Deadline"):
        fields[_TEXT[tag]] = parse_date(texts[tag], tag, what)
    recipient = _party(top.get("Recipient"), "Recipient", what) or Party()
    sender = _party(top.get("Sender"), "Sender", what) or default_sender or Party()
    # Parties and kind are checked by the hub for every source alike (schemas.validation, one code each);
    # the subject is this format's own rule.
    if not fields["subject"]:
        raise Refused(f"{what}: required element missing or empty: <Subject>", code="invalid-document")
    guid_derived = fields["document_guid"] is None
    if guid_derived:
        fields["document_guid"] = "{" + str(uuid.uuid5(_GUID_NAMESPACE, hashlib.sha256(data).hexdigest())) + "}"
    correspondents = []
    holder = top.get("Correspondents")
    for element in holder if holder is not None else ():
        values = {_CORRESPONDENT[k]: _text(v, what) for k, v in _children(element, tuple(_CORRESPONDENT), what).items()}
        try:
            correspondents.append(Correspondent.model_validate({k: v for k, v in values.items() if v is not None}))
        except ValidationError as exc:
            raise Refused(
                f"{what}: <Correspondent>: {exc.errors()[0]['loc'][0]}: {_first_error(exc)}", code="invalid-document"
            ) from None
    holder = top.get("Attachments")
    attachments = [_attachment(element, what) for element in (holder if holder is not None else ())]
    names = [a.file_name for a in attachments]
    if len(set(names)) != len(names) or what in names:
        raise Refused(
            f"{what}: attachment file names must be unique and differ from the XML's own name", code="invalid-document"
        )
    for tag in ("DocumentGUID", "ParentGUID"):
        value = fields[_TEXT[tag]]
        try:
            fields[_TEXT[tag]] = normalize_guid(value) if isinstance(value, str) else None
        except InvalidIdentifier as exc:
            raise Refused(f"{what}: <{tag}>: {exc}", code="invalid-document") from None
    try:
        envelope = Envelope.model_validate(
            {
                "sender": sender,
                "recipient": recipient,
                "correspondents": correspondents,
                **{k: v for k, v in fields.items() if v is not None},
            }
        )
    except ValidationError as exc:
        raise Refused(f"{what}: {exc.errors()[0]['loc'][0]}: {_first_error(exc)}", code="invalid-document") from None
    return ParsedDocument(envelope, attachments, guid_derived)


def _add(parent: etree._Element, tag: str, value: object) -> None:
    if value is not None and value != "":
        etree.SubElement(parent, _Q + tag).text = value.isoformat() if isinstance(value, date) else str(value)


def render(
    envelope: Envelope,
    attachment_names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    *,
    include_guid: bool = True,
    include_digests: bool = True,
) -> bytes:
    """Write ``envelope`` as a metadata file; characters ``encoding`` lacks become character references."""
    root = etree.Element(_Q + "Document", nsmap={None: NS})
    if include_guid:
        _add(root, "DocumentGUID", envelope.document_guid)
    _add(root, "ParentGUID", envelope.parent_guid)
    for tag, party in (("Sender", envelope.sender), ("Recipient", envelope.recipient)):
        element = etree.SubElement(root, _Q + tag)
        for child, field in _PARTY.items():
            _add(element, child, getattr(party, field))
    for tag, field in _TEXT.items():
        if tag not in ("DocumentGUID", "ParentGUID"):
            _add(root, tag, getattr(envelope, field))
    if envelope.correspondents:
        holder = etree.SubElement(root, _Q + "Correspondents")
        for person in envelope.correspondents:
            element = etree.SubElement(holder, _Q + "Correspondent")
            for child, field in _CORRESPONDENT.items():
                _add(element, child, getattr(person, field))
    if envelope.attachments:
        names = list(attachment_names) if attachment_names is not None else [a.file_name for a in envelope.attachments]
        holder = etree.SubElement(root, _Q + "Attachments")
        for ref, name in zip(envelope.attachments, names, strict=True):
            element = etree.SubElement(holder, _Q + "Attachment")
            _add(element, "FileName", name)
            _add(element, "MimeType", ref.mime_type)
            _add(element, "Comment", ref.comment)
            if include_digests:
                _add(element, "Size", ref.size)
                _add(element, "SHA256", ref.sha256)
    return etree.tostring(root, encoding=encoding, xml_declaration=True, pretty_print=True)
