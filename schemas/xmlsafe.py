"""Hardened XML parsing, the only way Kurier reads XML from outside.

Size, encoding and DOCTYPE are checked before lxml sees a byte: no DTDs, no entities, no network, no
huge trees. A document with a DOCTYPE is refused outright (entity-expansion bombs and external entities
both need one). The encoding comes from a byte-order mark, else the XML declaration, else the caller's
default (a legacy inbox's windows-1251), and the bytes are decoded strictly. Every refusal names the
file and says how to fix it: the reader is an AIS vendor or an operator.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from schemas.errors import Refused

__all__ = ["parse_xml", "safe_parser", "safe_xslt"]

_DECL = re.compile(rb"^<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._:-]*)[\"']")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _effective_encoding(data: bytes, default: str) -> tuple[bytes, str, str]:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :], name, "its byte-order mark"
    match = _DECL.match(data)
    if match:
        return data, match.group(1).decode("ascii"), "its XML declaration"
    if codecs.lookup(default).name != "utf-8" and not data.isascii():
        # Bulgarian text in windows-1251 is practically never valid UTF-8, so valid multi-byte UTF-8
        # means the AIS writes UTF-8 without saying so: reading it as 1251 would garble every letter.
        try:
            data.decode("utf-8")
            return data, "utf-8", "its content (valid UTF-8)"
        except UnicodeDecodeError:
            pass
    return data, default, "the inbox's configured encoding (no XML declaration)"


def _decode(data: bytes, what: str, default: str) -> str:
    body, encoding, why = _effective_encoding(data, default)
    try:
        return body.decode(encoding)
    except LookupError:
        raise Refused(
            f"{what}: unknown encoding {encoding!r} (from {why}); use utf-8 or windows-1251", code="bad-encoding"
        ) from None
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise Refused(
            f"{what}: byte 0x{body[exc.start]:02x} on line {line} is not valid {encoding} (taken from {why}). "
            f"Save the file in {encoding}, or declare the encoding it really uses, e.g. "
            '<?xml version="1.0" encoding="windows-1251"?>, or set `encoding:` for this inbox.',
            code="bad-encoding",
        ) from None


def _has_doctype(text: str) -> bool:
    """True when the prolog (before the root element) holds a DOCTYPE."""
    text = text.lstrip("\ufeff")
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        for start, end in (("<?", "?>"), ("<!--", "-->")):
            if text.startswith(start, i):
                close = text.find(end, i + len(start))
                if close < 0:
                    return False  # unterminated: lxml reports it as malformed
                i = close + len(end)
                break
        else:
            return text[i : i + 9].upper() == "<!DOCTYPE"
    return False


def safe_parser(encoding: str | None = None) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
        remove_comments=True, remove_pis=True, encoding=encoding,
    )


def parse_xml(data: bytes, *, what: str, max_bytes: int, encoding: str | None = None) -> etree._Element:
    """Parse untrusted XML bytes, or raise :class:`Refused` saying what is wrong with ``what`` (a file name).

    ``encoding`` is the default for files that neither declare one nor start with a byte-order mark.
    """
    if len(data) > max_bytes:
        raise Refused(f"{what}: {len(data)} bytes is more than the {max_bytes} bytes allowed for an XML file",
                      code="too-large")
    text = _decode(data, what, encoding or "utf-8")
    hostile = Refused(
        f"{what}: a DOCTYPE (and so any entity declaration) is not allowed; entities can read local files or "
        "expand into gigabytes. Remove the <!DOCTYPE ...> line.", code="hostile-xml",
    )
    if _has_doctype(text):
        raise hostile
    # lxml gets UTF-8 with the encoding forced, so the original declaration (already applied) is ignored.
    parser = safe_parser("utf-8")
    try:
        root = etree.fromstring(text.encode("utf-8"), parser=parser)
    except etree.XMLSyntaxError as exc:
        kinds = {e.type_name for e in parser.error_log}  # this parse's errors only
        if any(k.startswith("ERR_ENTITY") or k == "ERR_RESOURCE_LIMIT" for k in kinds):
            raise hostile from None
        line, column = exc.position
        raise Refused(f"{what}: not well-formed XML at line {line}, column {column}: {exc.msg}",
                      code="malformed-xml") from None
    if root.getroottree().docinfo.doctype:  # belt and braces: the prolog scan should have caught it
        raise hostile
    return root


def safe_xslt(xslt_root: etree._Element) -> etree.XSLT:
    """An XSLT that may not read or write files or the network."""
    return etree.XSLT(xslt_root, access_control=etree.XSLTAccessControl.DENY_ALL)
