"""The file-drop status format (FORMAT.md §6): ``<Status xmlns="urn:kurier:filedrop:1">`` files, both ways.

- Kurier tells the AIS that submitted a document of each status change: :func:`render_change` writes
  what :func:`read_change` reads back (an AIS vendor's tests, and ours, use the latter).
- A recipient AIS reports a later status of a document Kurier delivered to it: :func:`parse_report`
  reads what :func:`render_report` writes. Bytes become a tree only through
  :func:`~schemas.xmlsafe.parse_xml`, and every refusal names the element to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from lxml import etree
from pydantic import ValidationError

from adapters.filedrop.format import NS, parse_date
from schemas.errors import Refused
from schemas.identifiers import InvalidIdentifier, normalize_guid
from schemas.status import REPORTABLE, RecipientStatus, StatusChange, StatusReport
from schemas.xmlsafe import parse_xml

__all__ = ["REPORT_ELEMENTS", "ToldStatus", "parse_report", "read_change", "render_change", "render_report"]

_Q = "{" + NS + "}"
REPORT_ELEMENTS = ("DocumentGUID", "Code", "RegNumber", "RegDate", "Reason", "Time")
_MAX_STATUS_BYTES = 1024 * 1024  # a status file is a few hundred bytes; anything near this is not one


@dataclass(frozen=True)
class ToldStatus:
    """A status file Kurier wrote for the submitting AIS, read back."""

    seq: int
    document_guid: str
    reg_number: str | None  # the AIS's own number of the document
    connection: str | None  # the recipient's connection; None before routing
    recipient_eik: str | None
    recipient_name: str | None
    status: RecipientStatus
    label: str
    recipient_reg_number: str | None
    recipient_reg_date: date | None
    reason: str | None
    time: datetime
    journal_id: str


def _add(parent: etree._Element, tag: str, value: object) -> None:
    if value is not None and value != "":
        text = value.isoformat(timespec="seconds") if isinstance(value, datetime) else (
            value.isoformat() if isinstance(value, date) else str(value))
        etree.SubElement(parent, _Q + tag).text = text


def _tostring(root: etree._Element, encoding: str) -> bytes:
    # Characters the encoding lacks (a € in windows-1251) become character references, never "?".
    return etree.tostring(root, encoding=encoding, xml_declaration=True, pretty_print=True)


def render_change(change: StatusChange, encoding: str = "utf-8") -> bytes:
    """The status file telling the submitting AIS of ``change``."""
    root = etree.Element(_Q + "Status", nsmap={None: NS})
    _add(root, "Seq", change.seq)
    _add(root, "DocumentGUID", change.document_guid)
    _add(root, "RegNumber", change.source_reg_number)
    recipient = etree.SubElement(root, _Q + "Recipient")
    _add(recipient, "Connection", change.destination)
    _add(recipient, "EIK", change.recipient_eik)
    _add(recipient, "Name", change.recipient_name)
    _add(root, "Code", change.status.value)
    _add(root, "Label", change.status.label)
    _add(root, "RecipientRegNumber", change.reg_number)
    _add(root, "RecipientRegDate", change.reg_date)
    _add(root, "Reason", change.reason)
    _add(root, "Time", change.at)
    _add(root, "JournalId", change.envelope_id)
    return _tostring(root, encoding)


def render_report(report: StatusReport, encoding: str = "utf-8") -> bytes:
    """A status file as a recipient AIS writes it into ``<outbox>/status/`` (tests and vendors use it)."""
    root = etree.Element(_Q + "Status", nsmap={None: NS})
    for tag, value in zip(REPORT_ELEMENTS, (report.document_guid, report.status.value, report.reg_number,
                                            report.reg_date, report.reason, report.at), strict=True):
        _add(root, tag, value)
    return _tostring(root, encoding)


def _root(data: bytes, what: str, max_bytes: int, encoding: str) -> etree._Element:
    root = parse_xml(data, what=what, max_bytes=min(max_bytes, _MAX_STATUS_BYTES), encoding=encoding)
    if root.tag != _Q + "Status":
        raise Refused(f'{what}: the root element is {root.tag!r}, not <Status xmlns="{NS}">; a status file must '
                      "use that root element and namespace", code="invalid-status")
    return root


def _texts(parent: etree._Element, allowed: Sequence[str], what: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for child in parent:
        qname = etree.QName(child)
        if qname.localname not in allowed or qname.namespace != NS:
            raise Refused(f"{what}: unexpected element <{qname.localname}> in <{etree.QName(parent).localname}> "
                          f"(allowed: {', '.join(allowed)}; check the spelling and the namespace {NS})",
                          code="invalid-status")
        if qname.localname in found:
            raise Refused(f"{what}: <{qname.localname}> appears twice", code="invalid-status")
        if len(child) and qname.localname != "Recipient":
            raise Refused(f"{what}: <{qname.localname}> must hold text only", code="invalid-status")
        found[qname.localname] = (child.text or "").strip()
    return {k: v for k, v in found.items() if v}


def _time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise Refused(f"{what}: <Time> {value!r} is not a date and time (write e.g. 2025-12-16T09:30:00+02:00)",
                      code="invalid-status") from None


def parse_report(data: bytes, *, what: str, max_bytes: int, encoding: str = "utf-8") -> StatusReport:
    """Read a recipient AIS's status file, or raise :class:`Refused` naming what to fix in ``what``."""
    values = _texts(_root(data, what, max_bytes, encoding), REPORT_ELEMENTS, what)
    missing = [tag for tag in ("DocumentGUID", "Code") if tag not in values]
    if missing:
        raise Refused(f"{what}: required element(s) missing or empty: {', '.join(f'<{m}>' for m in missing)}",
                      code="invalid-status")
    try:
        guid = normalize_guid(values["DocumentGUID"])
    except InvalidIdentifier as exc:
        raise Refused(f"{what}: <DocumentGUID>: {exc}", code="invalid-status") from None
    try:
        status = RecipientStatus.parse(values["Code"])
    except ValueError as exc:
        raise Refused(f"{what}: <Code>: {exc}", code="unknown-status") from None
    if status not in REPORTABLE:
        allowed = ", ".join(sorted(s.value for s in REPORTABLE))
        raise Refused(f"{what}: <Code> {status.value!r} is Kurier's to set; a recipient reports one of {allowed}",
                      code="unknown-status")
    if status == RecipientStatus.REGISTERED and "RegNumber" not in values:
        raise Refused(f"{what}: <Code>registered</Code> needs your registration number in <RegNumber>",
                      code="invalid-status")
    fields: dict[str, object] = {"document_guid": guid, "status": status, "reg_number": values.get("RegNumber"),
                                 "reg_date": parse_date(values.get("RegDate"), "RegDate", what, "invalid-status"),
                                 "reason": values.get("Reason")}
    at = _time(values.get("Time"), what)
    if at is not None:
        fields["at"] = at
    try:
        return StatusReport.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise Refused(f"{what}: {error['loc'][0]}: {str(error['msg']).removeprefix('Value error, ')}",
                      code="invalid-status") from None


def read_change(data: bytes, *, what: str = "status file") -> ToldStatus:
    """Read back a status file Kurier wrote (what the submitting AIS does with it)."""
    root = _root(data, what, _MAX_STATUS_BYTES, "utf-8")
    top = {etree.QName(child).localname: child for child in root}
    values = _texts(root, tuple(top), what)
    recipient = _texts(top["Recipient"], ("Connection", "EIK", "Name"), what) if "Recipient" in top else {}
    time = _time(values.get("Time"), what)
    if "Seq" not in values or "DocumentGUID" not in values or "Code" not in values or time is None:
        raise Refused(f"{what}: not a complete status file (Seq, DocumentGUID, Code and Time are always written)",
                      code="invalid-status")
    return ToldStatus(
        seq=int(values["Seq"]), document_guid=values["DocumentGUID"], reg_number=values.get("RegNumber"),
        connection=recipient.get("Connection"), recipient_eik=recipient.get("EIK"),
        recipient_name=recipient.get("Name"), status=RecipientStatus(values["Code"]), label=values.get("Label", ""),
        recipient_reg_number=values.get("RecipientRegNumber"),
        recipient_reg_date=parse_date(values.get("RecipientRegDate"), "RecipientRegDate", what, "invalid-status"),
        reason=values.get("Reason"), time=time, journal_id=values.get("JournalId", ""),
    )
