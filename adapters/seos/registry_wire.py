"""The SEOS registry's wire format: SOAP 1.1, rpc style, SOAP-encoded, namespace ``uri:egovmsg``.

Written with lxml from the registry WSDL's shapes rather than driven by zeep: zeep would need the
official WSDL at run time (it is not part of this package) and writes neither ``encodingStyle`` nor
``xsi:type``, which rpc/encoded servers of that generation expect. The tests check these envelopes
against the official WSDL with zeep.

- Request: ``Body/{uri:egovmsg}<Operation>`` with one unqualified, ``xsi:type``d child per WSDL part.
- Answer: ``Body/{uri:egovmsg}<Operation>Response/return`` of type ``EGovMessageDir``
  (``Entities``: a ``soapenc:Array`` of ``Entity``, and ``LastChange``).
Readers accept what encoders of that era write: any element name for array items, qualified or
unqualified field names, and multi-reference values (``href="#id"`` pointing at an ``id``ed element).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from adapters.seos.registry_model import Contact, Entity, EntityStatus, Service

__all__ = [
    "NS",
    "OPERATIONS",
    "SOAP_ENV",
    "Records",
    "WireError",
    "build_fault",
    "build_request",
    "build_response",
    "read_fault",
    "read_request",
    "read_response",
    "soap_action",
]

NS = "uri:egovmsg"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
_NSMAP = {"soapenv": SOAP_ENV, "soapenc": SOAP_ENC, "xsi": XSI, "xsd": XSD, "eg": NS}

#: Each operation's parts (name, xsd type), in the WSDL's order.
OPERATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "GetAllRecords": (),
    "GetNewRecords": (("date", "xsd:dateTime"),),
    "GetByEntityIdentifier": (("EntityIdentifier", "xsd:string"),),
    "GetByGuid": (("guid", "xsd:string"),),
    "GetByCertificateSN": (("CertificateSN", "xsd:string"),),
}


class WireError(ValueError):
    """The XML is not a registry message of the expected shape; the text says what is off."""


@dataclass(frozen=True)
class Records:
    """An ``EGovMessageDir``: the entities of one answer and the registry's own LastChange."""

    entities: tuple[Entity, ...]
    last_change: datetime | None
    skipped: tuple[str, ...] = ()  # entities the registry sent that could not be read, and why


def soap_action(operation: str) -> str:
    return f"{NS}/{operation}"


def _envelope() -> tuple[etree._Element, etree._Element]:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=_NSMAP)
    return env, etree.SubElement(env, f"{{{SOAP_ENV}}}Body")


def _typed(parent: etree._Element, name: str, xsd_type: str, value: str) -> etree._Element:
    el = etree.SubElement(parent, name)
    el.set(f"{{{XSI}}}type", xsd_type)
    el.text = value
    return el


def _xsd_datetime(value: datetime) -> str:
    return value.isoformat(timespec="seconds") if value.microsecond == 0 else value.isoformat()


def build_request(operation: str, *args: str | datetime) -> bytes:
    """The SOAP envelope calling ``operation`` with its parts' values in the WSDL's order."""
    parts = OPERATIONS[operation]
    if len(args) != len(parts):
        raise TypeError(f"{operation} takes {len(parts)} argument(s), got {len(args)}")
    env, body = _envelope()
    call = etree.SubElement(body, f"{{{NS}}}{operation}")
    call.set(f"{{{SOAP_ENV}}}encodingStyle", SOAP_ENC)
    for (name, xsd_type), value in zip(parts, args, strict=True):
        _typed(call, name, xsd_type, _xsd_datetime(value) if isinstance(value, datetime) else value)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _deref(el: etree._Element, ids: dict[str, etree._Element]) -> etree._Element:
    href = el.get("href")
    if href and href.startswith("#"):
        target = ids.get(href[1:])
        if target is None:
            raise WireError(f"<{_local(el)} href={href!r}> points at no element with that id")
        return target
    return el


def _children(el: etree._Element, ids: dict[str, etree._Element]) -> list[etree._Element]:
    return [_deref(c, ids) for c in _deref(el, ids) if isinstance(c.tag, str)]


def _fields(el: etree._Element, ids: dict[str, etree._Element]) -> dict[str, etree._Element]:
    return {_local(c): c for c in _children(el, ids)}


def _text(fields: dict[str, etree._Element], name: str) -> str:
    el = fields.get(name)
    return (el.text or "").strip() if el is not None else ""


def _datetime(text: str, what: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise WireError(f"{what} {text!r} is not an xsd:dateTime") from None


def _service(el: etree._Element, ids: dict[str, etree._Element]) -> Service:
    f = _fields(el, ids)
    version = _text(f, "Version") or "1"
    if not version.lstrip("-").isdigit():
        raise WireError(f"service Version {version!r} is not an integer")
    return Service(guid=_text(f, "Guid"), name=_text(f, "Name"), uri=_text(f, "URI"), status=_text(f, "Status"),
                   type=_text(f, "Type"), version=int(version))


def _entity(el: etree._Element, ids: dict[str, etree._Element]) -> Entity:
    f = _fields(el, ids)
    status = _text(f, "Status")
    if status not in {"0", "1", "2"}:
        raise WireError(f"Status {status!r} is none of 0 (inactive), 1 (active), 2 (temporarily inactive)")
    contact = _fields(f["Contact"], ids) if "Contact" in f else {}
    services = _children(f["Services"], ids) if "Services" in f else []
    return Entity(
        entity_identifier=_text(f, "EntityIdentifier"), guid=_text(f, "Guid"), parent_guid=_text(f, "ParentGuid"),
        administrative_body_name=_text(f, "AdministrativeBodyName"),
        contact=Contact(phone=_text(contact, "Phone"), fax=_text(contact, "Fax"), email=_text(contact, "EmailAddress")),
        certificate_sn=_text(f, "CertificateSN"), status=EntityStatus(int(status)),
        services=tuple(_service(s, ids) for s in services), last_change=_datetime(_text(f, "LastChange"), "LastChange"),
    )


def _body_call(root: etree._Element) -> tuple[etree._Element, dict[str, etree._Element]]:
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise WireError(f"the root element is <{root.tag}>, not a SOAP 1.1 Envelope")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None:
        raise WireError("the SOAP Envelope has no Body")
    elements = [c for c in body if isinstance(c.tag, str)]
    if not elements:
        raise WireError("the SOAP Body is empty")
    ids = {el.get("id"): el for el in body.iter() if isinstance(el.tag, str) and el.get("id")}
    return elements[0], {k: v for k, v in ids.items() if k}


def read_fault(root: etree._Element) -> tuple[str, str] | None:
    """``(faultcode, faultstring)`` when the envelope carries a SOAP fault, else None."""
    call, _ = _body_call(root)
    if call.tag != f"{{{SOAP_ENV}}}Fault":
        return None
    f = {_local(c): (c.text or "").strip() for c in call if isinstance(c.tag, str)}
    return f.get("faultcode", ""), f.get("faultstring", "")


def read_response(root: etree._Element, operation: str) -> Records:
    """The records in a parsed answer to ``operation``; WireError when it is not one."""
    call, ids = _body_call(root)
    expected = f"{{{NS}}}{operation}Response"
    if call.tag != expected:
        raise WireError(f"the SOAP Body holds <{call.tag}>, expected <{expected}>")
    parts = _children(call, ids)
    if not parts:
        raise WireError(f"<{operation}Response> has no return part")
    ret = _fields(parts[0], ids)
    entities: list[Entity] = []
    skipped: list[str] = []
    for i, item in enumerate(_children(ret["Entities"], ids) if "Entities" in ret else [], 1):
        try:
            entities.append(_entity(item, ids))
        except (WireError, ValueError, KeyError) as exc:
            # One mistyped entry must not hide the other thousand participants: skip it, say which.
            label = _text(_fields(item, ids), "EntityIdentifier") or f"#{i}"
            skipped.append(f"entity {label}: {exc}")
    return Records(tuple(entities), _datetime(_text(ret, "LastChange"), "LastChange"), tuple(skipped))


def read_request(root: etree._Element) -> tuple[str, dict[str, str]]:
    """The operation a parsed request calls, and its parts' texts (for the local registry)."""
    call, ids = _body_call(root)
    qname = etree.QName(call)
    if qname.namespace != NS or qname.localname not in OPERATIONS:
        raise WireError(f"<{call.tag}> is not an operation of the registry ({', '.join(OPERATIONS)})")
    return qname.localname, {_local(c): (c.text or "").strip() for c in _children(call, ids)}


def _array(parent: etree._Element, name: str, item_type: str, count: int) -> etree._Element:
    arr = etree.SubElement(parent, name)
    arr.set(f"{{{XSI}}}type", "soapenc:Array")
    arr.set(f"{{{SOAP_ENC}}}arrayType", f"eg:{item_type}[{count}]")
    return arr


def _write_entity(parent: etree._Element, e: Entity) -> None:
    item = etree.SubElement(parent, "item")
    item.set(f"{{{XSI}}}type", "eg:Entity")
    for name, value in (("EntityIdentifier", e.entity_identifier), ("Guid", e.guid), ("ParentGuid", e.parent_guid),
                        ("AdministrativeBodyName", e.administrative_body_name)):
        _typed(item, name, "xsd:string", value)
    contact = etree.SubElement(item, "Contact")
    contact.set(f"{{{XSI}}}type", "eg:Contact")
    for name, value in (("Phone", e.contact.phone), ("Fax", e.contact.fax), ("EmailAddress", e.contact.email)):
        _typed(contact, name, "xsd:string", value)
    _typed(item, "CertificateSN", "xsd:string", e.certificate_sn)
    services = _array(item, "Services", "Service", len(e.services))
    for s in e.services:
        el = etree.SubElement(services, "item")
        el.set(f"{{{XSI}}}type", "eg:Service")
        for name, xsd_type, value in (("Guid", "xsd:string", s.guid), ("Name", "xsd:string", s.name),
                                      ("URI", "xsd:anyURI", s.uri), ("Status", "xsd:string", s.status),
                                      ("Type", "xsd:string", s.type), ("Version", "xsd:integer", str(s.version))):
            _typed(el, name, xsd_type, value)
    if e.last_change is not None:
        _typed(item, "LastChange", "xsd:dateTime", _xsd_datetime(e.last_change))
    _typed(item, "Status", "xsd:string", str(int(e.status)))


def build_response(operation: str, entities: Iterable[Entity], last_change: datetime | None) -> bytes:
    """The registry's answer to ``operation`` (what the local registry sends)."""
    listed = list(entities)
    env, body = _envelope()
    answer = etree.SubElement(body, f"{{{NS}}}{operation}Response")
    answer.set(f"{{{SOAP_ENV}}}encodingStyle", SOAP_ENC)
    ret = etree.SubElement(answer, "return")
    ret.set(f"{{{XSI}}}type", "eg:EGovMessageDir")
    array = _array(ret, "Entities", "Entity", len(listed))
    for entity in listed:
        _write_entity(array, entity)
    if last_change is not None:
        _typed(ret, "LastChange", "xsd:dateTime", _xsd_datetime(last_change))
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def build_fault(code: str, text: str) -> bytes:
    env, body = _envelope()
    fault = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"soapenv:{code}"
    etree.SubElement(fault, "faultstring").text = text
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")
