"""Hardened XML parsing: hostile, malformed, mis-encoded and oversized input is refused with a code."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import Refused
from schemas.xmlsafe import parse_xml

LIMIT = 100_000
SECRET = "TOP-SECRET-9c1e"

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""

HOSTILE = {
    "billion-laughs": BILLION_LAUGHS,
    "external-entity": b'<!DOCTYPE doc [<!ENTITY e SYSTEM "file:///etc/passwd">]><doc>&e;</doc>',
    "external-entity-in-attribute": b'<!DOCTYPE doc [<!ENTITY e SYSTEM "file:///etc/passwd">]><doc a="&e;"/>',
    "parameter-entity": b'<!DOCTYPE doc [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><doc/>',
    "external-dtd": b'<!DOCTYPE doc SYSTEM "file:///etc/passwd"><doc/>',
    "bare-doctype": b"<!DOCTYPE doc><doc/>",
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_doctype_and_entities_are_refused_without_expanding_or_reading(data: bytes) -> None:
    with pytest.raises(Refused) as err:
        parse_xml(data, what="hostile.xml", max_bytes=LIMIT)
    assert err.value.code in {"hostile-xml", "malformed-xml"}  # which one: see the test below
    assert "hostile.xml" in str(err.value)
    assert "root:" not in str(err.value)  # /etc/passwd's first line never reaches the message
    assert "lollollol" not in str(err.value)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(v, id=k)
        for k, v in HOSTILE.items()
    ],
)
def test_doctype_and_entities_are_reported_as_hostile(data: bytes) -> None:
    with pytest.raises(Refused) as err:
        parse_xml(data, what="hostile.xml", max_bytes=LIMIT)
    assert err.value.code == "hostile-xml"
    assert "DOCTYPE" in str(err.value)


def test_an_external_entity_is_never_read(tmp_path: Path) -> None:
    # A readable, plain-text file: with entities resolved it would land in the element's text.
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    data = f'<!DOCTYPE doc [<!ENTITY e SYSTEM "{secret.as_uri()}">]><doc>&e;</doc>'.encode()
    with pytest.raises(Refused) as err:
        parse_xml(data, what="doc.xml", max_bytes=LIMIT)
    assert err.value.code == "hostile-xml"
    assert SECRET not in str(err.value)
    assert SECRET not in repr(err.value.__cause__)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"not xml",
        b"<doc>",
        b"<doc><a>x</doc>",
        b"<a/><b/>",
        b"<doc attr=x/>",
        b"<doc>&undefined;</doc>",
        "<док>текст</док".encode(),
    ],
    ids=[
        "empty",
        "blank",
        "text",
        "unclosed",
        "mismatched",
        "two-roots",
        "unquoted-attr",
        "undefined-entity",
        "cyrillic-unclosed",
    ],
)
def test_malformed_xml_is_refused(data: bytes) -> None:
    with pytest.raises(Refused) as err:
        parse_xml(data, what="broken.xml", max_bytes=LIMIT)
    assert err.value.code == "malformed-xml"
    assert "broken.xml" in str(err.value)


@pytest.mark.parametrize("data", [b"<Doc><Encoding>UTF-8</Doc>", b"<doc><utf-8>x</doc>"])
def test_malformed_xml_mentioning_encoding_is_still_malformed(data: bytes) -> None:
    with pytest.raises(Refused) as err:
        parse_xml(data, what="broken.xml", max_bytes=LIMIT)
    assert err.value.code == "malformed-xml"


ORDER = "<заповед><номер>ОА-01-123/15.12.2025</номер><текст>Командировка до София</текст></заповед>"


def test_cp1251_without_a_declaration_is_a_bad_encoding() -> None:
    with pytest.raises(Refused) as err:
        parse_xml(ORDER.encode("cp1251"), what="order.xml", max_bytes=LIMIT)
    assert err.value.code == "bad-encoding"
    assert "order.xml" in str(err.value)
    assert "windows-1251" in str(err.value)  # tells the operator how to fix it


def test_an_unknown_declared_encoding_is_a_bad_encoding() -> None:
    with pytest.raises(Refused) as err:
        parse_xml(b'<?xml version="1.0" encoding="no-such-charset"?><doc/>', what="d.xml", max_bytes=LIMIT)
    assert err.value.code == "bad-encoding"


def test_the_source_encoding_parameter_reads_cp1251() -> None:
    root = parse_xml(ORDER.encode("cp1251"), what="order.xml", max_bytes=LIMIT, encoding="windows-1251")
    assert root.tag == "заповед"
    assert root.findtext("номер") == "ОА-01-123/15.12.2025"
    assert root.findtext("текст") == "Командировка до София"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (ORDER.encode(), None),
        (b"\xef\xbb\xbf" + ORDER.encode(), None),  # UTF-8 with a BOM
        (b'<?xml version="1.0" encoding="windows-1251"?>' + ORDER.encode("cp1251"), None),
        (ORDER.encode("utf-16"), None),
    ],
    ids=["utf-8", "utf-8-bom", "declared-windows-1251", "utf-16-bom"],
)
def test_correctly_encoded_cyrillic_parses(data: bytes, encoding: str | None) -> None:
    root = parse_xml(data, what="order.xml", max_bytes=LIMIT, encoding=encoding)
    assert root.findtext("текст") == "Командировка до София"


def test_comments_and_processing_instructions_are_dropped() -> None:
    root = parse_xml(b"<doc><!-- note --><?pi x?><a>1</a></doc>", what="d.xml", max_bytes=LIMIT)
    assert [child.tag for child in root] == ["a"]


def test_size_limit_is_checked_before_parsing() -> None:
    data = b"<doc>" + b"x" * 95 + b"</doc>"
    assert len(data) == 106
    assert parse_xml(data, what="d.xml", max_bytes=106).text == "x" * 95
    with pytest.raises(Refused) as err:
        parse_xml(data, what="d.xml", max_bytes=105)
    assert err.value.code == "too-large"
    assert "106" in str(err.value) and "105" in str(err.value) and "d.xml" in str(err.value)
    with pytest.raises(Refused) as err:  # an oversized bomb is refused for its size, without being parsed
        parse_xml(BILLION_LAUGHS, what="bomb.xml", max_bytes=100)
    assert err.value.code == "too-large"
