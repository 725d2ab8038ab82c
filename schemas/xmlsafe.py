"""Hardened XML parsing, the only way Kurier reads XML from outside.

No DTDs, no entities, no network, no huge trees: a document with a DOCTYPE is refused outright
(entity-expansion bombs and external entities both need one), and size is checked before parsing.
"""

from __future__ import annotations

from lxml import etree

from router.errors import Refused

__all__ = ["parse_xml", "safe_parser", "safe_xslt"]


def safe_parser(encoding: str | None = None) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
        remove_comments=True, remove_pis=True, encoding=encoding,
    )


def parse_xml(data: bytes, *, what: str, max_bytes: int, encoding: str | None = None) -> etree._Element:
    """Parse ``data`` or raise :class:`Refused` saying what was wrong with ``what`` (a file name)."""
    if len(data) > max_bytes:
        raise Refused(f"{what}: {len(data)} bytes is more than the {max_bytes} bytes allowed for XML",
                      code="too-large")
    parser = safe_parser(encoding)
    try:
        root = etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as exc:
        text = str(exc)
        kinds = {e.type_name for e in parser.error_log}  # this parse's errors only
        # libxml2 stops entity bombs and external entities itself (as syntax errors): say what they are.
        if b"<!DOCTYPE" in data[:4096].upper() or any(k.startswith("ERR_ENTITY") or k == "ERR_RESOURCE_LIMIT"
                                                      for k in kinds):
            raise Refused(f"{what}: a DOCTYPE/entity declaration is not allowed (entity expansion and external "
                          "entities are refused for safety); remove it", code="hostile-xml") from exc
        if kinds & {"ERR_INVALID_ENCODING", "ERR_UNSUPPORTED_ENCODING", "ERR_INVALID_CHAR"}:
            raise Refused(
                f"{what}: the bytes are not valid {encoding or 'UTF-8 (or the declared encoding)'}: {text}. "
                "Declare the real encoding (e.g. <?xml version=\"1.0\" encoding=\"windows-1251\"?>) "
                "or set the source's encoding.", code="bad-encoding",
            ) from exc
        raise Refused(f"{what}: not well-formed XML: {text}", code="malformed-xml") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise Refused(f"{what}: a DOCTYPE/entity declaration is not allowed (entity expansion and external "
                      "entities are refused for safety); remove it", code="hostile-xml")
    return root


def safe_xslt(xslt_root: etree._Element) -> etree.XSLT:
    """An XSLT that may not read or write files or the network."""
    return etree.XSLT(xslt_root, access_control=etree.XSLTAccessControl.DENY_ALL)
