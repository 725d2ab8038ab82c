"""Reading untrusted XML: encoding, size and DOCTYPE checked before lxml sees a byte of it.

Every refusal names the file and says how to fix it; the reader is an AIS vendor or an operator.
"""

from __future__ import annotations

import codecs
import re

from lxml import etree

from router.errors import Refused

__all__ = ["read_xml"]

_DECL = re.compile(rb"^<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z][A-Za-z0-9._:-]*)[\"']")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _parser() -> etree.XMLParser:
    # The text handed to lxml is always re-encoded UTF-8: the override makes lxml ignore the
    # original declaration, whose encoding we already applied ourselves.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        encoding="utf-8",
    )


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


def read_xml(data: bytes, *, what: str, max_bytes: int, encoding: str) -> etree._Element:
    """Parse untrusted XML bytes, or raise :class:`Refused` saying what is wrong with ``what`` (a file name)."""
    if len(data) > max_bytes:
        raise Refused(
            f"{what}: {len(data)} bytes is more than the {max_bytes} bytes allowed for an XML file", code="too-large"
        )
    text = _decode(data, what, encoding)
    hostile = Refused(
        f"{what}: a DOCTYPE (and so any entity declaration) is not allowed in a file-drop document; "
        "entities can read local files or expand into gigabytes. Remove the <!DOCTYPE ...> line.",
        code="hostile-xml",
    )
    if _has_doctype(text):
        raise hostile
    try:
        root = etree.fromstring(text.encode("utf-8"), parser=_parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        raise Refused(
            f"{what}: not well-formed XML at line {line}, column {column}: {exc.msg}", code="malformed-xml"
        ) from None
    if root.getroottree().docinfo.doctype:  # belt and braces: the prolog scan should have caught it
        raise hostile
    return root
