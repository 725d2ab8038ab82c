"""The transform stage: XSLT on matching XML attachments, the result checked by XSD, no file access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from router.config import MatchConfig, TransformConfig
from router.store import FileStore as PayloadStore
from router.transform import Transformer
from schemas import AttachmentRef, Envelope, Party, new_guid
from schemas.errors import ConfigError, Permanent, Refused

XSL = '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"{ns}>{body}</xsl:stylesheet>'
TO_OUT = XSL.format(ns="", body='<xsl:template match="/in"><out><xsl:value-of select="."/></out></xsl:template>')
OUT_XSD = """<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="out"><xs:simpleType><xs:restriction base="xs:string"><xs:minLength value="1"/>
  </xs:restriction></xs:simpleType></xs:element></xs:schema>"""
SECRET = "TOP-SECRET-7f3a"


@pytest.fixture
def store(tmp_path: Path) -> PayloadStore:
    return PayloadStore(tmp_path / "store")


def transformer(tmp_path: Path, store: PayloadStore, xslt: str, xsd: str | None = None, **cfg: Any) -> Transformer:
    (tmp_path / "t.xsl").write_text(xslt, encoding="utf-8")
    if xsd is not None:
        (tmp_path / "t.xsd").write_text(xsd, encoding="utf-8")
    config = TransformConfig(
        name=cfg.pop("name", "to-out"), xslt=Path("t.xsl"), xsd=Path("t.xsd") if xsd else None, **cfg
    )
    # Relative paths resolve like the hub's (against a directory), here the test's own.
    return Transformer([config], lambda p: p if p.is_absolute() else tmp_path / p, store, max_xml_bytes=10_000)


def envelope(store: PayloadStore, files: dict[str, bytes], **fields: Any) -> Envelope:
    atts = [
        AttachmentRef(file_name=name, size=len(data), sha256=store.put_bytes(data).sha256)
        for name, data in files.items()
    ]
    return Envelope(document_guid=new_guid(), sender=Party(eik="000695235"), kind="Заповед", attachments=atts, **fields)


def test_matching_xml_files_are_transformed_and_validated(tmp_path: Path, store: PayloadStore) -> None:
    t = transformer(tmp_path, store, TO_OUT, OUT_XSD)
    original = "<in>Заповед № 5</in>".encode()
    env = envelope(store, {"doc.xml": original, "scan.pdf": b"%PDF-1.7"})
    new, outcome, detail = t.apply(env)
    assert outcome == "ok"
    assert detail == "applied to-out(doc.xml)"
    xml, pdf = new.attachments
    assert etree.fromstring(store.read_bytes(xml.sha256)).tag == "out"
    assert etree.fromstring(store.read_bytes(xml.sha256)).text == "Заповед № 5"
    assert (xml.file_name, xml.mime_type, xml.size) == ("doc.xml", "application/xml", len(store.read_bytes(xml.sha256)))
    assert pdf == env.attachments[1]  # not an XML file: untouched
    assert store.read_bytes(env.attachments[0].sha256) == original  # the original is kept by its hash
    assert new.id == env.id


def test_the_file_pattern_ignores_case(tmp_path: Path, store: PayloadStore) -> None:
    t = transformer(tmp_path, store, TO_OUT, files="*.xml")
    new, outcome, _ = t.apply(envelope(store, {"DOC.XML": b"<in>x</in>"}))
    assert outcome == "ok"
    assert etree.fromstring(store.read_bytes(new.attachments[0].sha256)).tag == "out"


@pytest.mark.parametrize(
    ("match", "files", "names"),
    [
        ({"kind": ["Молба"]}, "*.xml", {"doc.xml": b"<in>x</in>"}),  # another kind of document
        ({"sender_eik": ["121759222"]}, "*.xml", {"doc.xml": b"<in>x</in>"}),  # another sender
        ({}, "meta-*.xml", {"doc.xml": b"<in>x</in>"}),  # no file of that name
        ({}, "*.xml", {}),  # no files at all
    ],
)
def test_nothing_applies_leaves_the_envelope_alone(
    tmp_path: Path, store: PayloadStore, match: dict[str, Any], files: str, names: dict[str, bytes]
) -> None:
    t = transformer(tmp_path, store, TO_OUT, match=MatchConfig(**match), files=files)
    env = envelope(store, names)
    assert t.apply(env) == (env, "skipped", "no transform applies")


def test_a_result_the_schema_rejects_is_permanent(tmp_path: Path, store: PayloadStore) -> None:
    t = transformer(tmp_path, store, TO_OUT, OUT_XSD, name="ais-to-seos")
    with pytest.raises(Permanent) as err:
        t.apply(envelope(store, {"empty.xml": b"<in></in>"}))  # <out/> is shorter than minLength 1
    assert err.value.code == "schema-invalid"
    assert "'ais-to-seos'" in str(err.value) and "empty.xml" in str(err.value) and "t.xsd" in str(err.value)


def test_a_hostile_attachment_is_refused_before_the_xslt(tmp_path: Path, store: PayloadStore) -> None:
    t = transformer(tmp_path, store, TO_OUT)
    bomb = b'<!DOCTYPE in [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><in>&b;</in>'
    with pytest.raises(Refused) as err:
        t.apply(envelope(store, {"bomb.xml": bomb}))
    assert err.value.code == "hostile-xml"
    big = envelope(store, {"big.xml": b"<in>" + b"x" * 10_000 + b"</in>"})
    store.read_bytes = None  # type: ignore[method-assign,assignment]  # an oversized file is never loaded
    with pytest.raises(Refused) as err:
        t.apply(big)
    assert err.value.code == "too-large"


@pytest.mark.parametrize(
    ("xslt", "problem"),
    [
        ("<xsl:stylesheet", "cannot read"),  # not well-formed
        (XSL.format(ns="", body="<xsl:template><xsl:bogus/></xsl:template>"), "not a valid XSLT"),
        (
            XSL.format(ns="", body='<xsl:template match="/"><xsl:value-of select="(("/></xsl:template>'),
            "not a valid XSLT",
        ),
        (None, "cannot read"),  # the file is missing
    ],
)
def test_a_broken_stylesheet_stops_the_start(
    tmp_path: Path, store: PayloadStore, xslt: str | None, problem: str
) -> None:
    config = TransformConfig(name="broken-one", xslt=tmp_path / "broken.xsl")
    if xslt is not None:
        (tmp_path / "broken.xsl").write_text(xslt, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Transformer([config], lambda p: p, store, max_xml_bytes=10_000)
    assert "transforms[0] 'broken-one'" in str(err.value)
    assert problem in str(err.value)
    assert "broken.xsl" in str(err.value)


def test_a_broken_schema_stops_the_start(tmp_path: Path, store: PayloadStore) -> None:
    bad_xsd = '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"><xs:element name="out" type="nope"/></xs:schema>'
    with pytest.raises(ConfigError, match=r"transforms\[0\] 'to-out': .*t\.xsd is not a valid XSD"):
        transformer(tmp_path, store, TO_OUT, bad_xsd)


READ_SECRET = XSL.format(
    ns="", body='<xsl:template match="/"><out><xsl:value-of select="document(\'{url}\')"/></out></xsl:template>'
)
WRITE_FILE = XSL.format(
    ns=' xmlns:exsl="http://exslt.org/common" extension-element-prefixes="exsl"',
    body='<xsl:template match="/"><exsl:document href="{url}"><pwned/></exsl:document><out>x</out></xsl:template>',
)


def test_a_stylesheet_cannot_read_files(tmp_path: Path, store: PayloadStore) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_text(f"<s>{SECRET}</s>")
    xslt = READ_SECRET.replace("{url}", secret.as_uri())
    # Control: without the hub's restrictions this stylesheet does read the file.
    assert SECRET in str(etree.XSLT(etree.XML(xslt.encode()))(etree.XML(b"<in/>")))
    t = transformer(tmp_path, store, xslt)
    with pytest.raises(Permanent) as err:
        t.apply(envelope(store, {"doc.xml": b"<in/>"}))
    assert err.value.code == "transform-failed"
    assert SECRET not in str(err.value)
    assert not any(SECRET.encode() in p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file())


def test_a_stylesheet_cannot_read_etc_passwd(tmp_path: Path, store: PayloadStore) -> None:
    t = transformer(tmp_path, store, READ_SECRET.replace("{url}", "file:///etc/passwd"))
    with pytest.raises(Permanent) as err:
        t.apply(envelope(store, {"doc.xml": b"<in/>"}))
    assert "root:" not in str(err.value)


def test_a_stylesheet_cannot_write_files(tmp_path: Path, store: PayloadStore) -> None:
    target = tmp_path / "written.xml"
    t = transformer(tmp_path, store, WRITE_FILE.replace("{url}", target.as_uri()))
    with pytest.raises(Permanent, match="write rights") as err:
        t.apply(envelope(store, {"doc.xml": b"<in/>"}))
    assert err.value.code == "transform-failed"
    assert not target.exists()


def test_a_stylesheet_producing_nothing_is_permanent(tmp_path: Path, store: PayloadStore) -> None:
    t = transformer(tmp_path, store, XSL.format(ns="", body='<xsl:template match="/"/>'))
    with pytest.raises(Permanent) as err:
        t.apply(envelope(store, {"doc.xml": b"<in/>"}))
    assert err.value.code == "transform-failed"
