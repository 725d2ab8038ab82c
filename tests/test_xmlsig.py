"""XML signatures: the SEOS message XML-DSig and XAdES-B, signed with real keys, checked by real tools."""

from __future__ import annotations

import base64
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import CanonicalizationMethod
from signxml.algorithms import SignatureConstructionMethod
from signxml.xades import XAdESSigner

from schemas.errors import Permanent
from signing.certcheck import ValidationData, eik_of
from signing.rawkey import as_private_key, cryptography_certificate
from signing.report import SignatureStatus
from signing.xades import sign_xades, verify_xml, verify_xml_signatures
from signing.xmldsig import SEOS_NS, sign_seos_message, verify_seos_message
from tests.xmlsig_fixtures import EIK, CountingKey, SignerPki, pki, require_tool, seos_message, seos_schema

__all__ = ["pki"]  # the session fixture, imported so pytest finds it

DS = "http://www.w3.org/2000/09/xmldsig#"
ORDER = ('<?xml version="1.0" encoding="utf-8"?>\n<Zapoved xmlns="urn:kurier:test"><Nomer>OA-01-7</Nomer>'
         "<Tekst>Възлагам проверка.</Tekst><Suma>10</Suma></Zapoved>".encode())


def xmlsec_verify(pki: SignerPki, signed: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("xmlsec1"), "--verify", "--trusted-pem", str(pki.ca_pem), signed.name],
                          cwd=signed.parent, capture_output=True, text=True, timeout=30)


# --- the SEOS message signature -----------------------------------------------------------------------


def test_seos_signature_is_valid_placed_as_seos_wants_and_verified_by_xmlsec1(pki: SignerPki, tmp_path: Path) -> None:
    signed = sign_seos_message(seos_message(), pki.signer)

    result = verify_seos_message(signed, trust_roots=[pki.root])
    assert result.report.status is SignatureStatus.VALID, result.report.reason
    assert result.report.signer_eik == EIK and "Иван Петров" in (result.report.signer or "")
    assert len(result.report.chain) == 3 and "Root CA" in result.report.chain[-1]
    assert result.report.weak == []
    assert result.certificate is not None and result.certificate.serial_number == pki.signer.certificate().serial_number

    root = etree.fromstring(signed)
    signature = root[-1]
    assert signature.tag == f"{{{DS}}}Signature"  # the last child of Message
    (reference,) = signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert reference.get("URI") == ""
    assert [t.get("Algorithm") for t in reference.iter(f"{{{DS}}}Transform")] == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature"]
    assert signature.find(f".//{{{DS}}}SignatureMethod").get("Algorithm").endswith("rsa-sha256")
    c14n = signature.find(f".//{{{DS}}}CanonicalizationMethod").get("Algorithm")
    assert c14n == CanonicalizationMethod.CANONICAL_XML_1_0.value
    x509_data = signature.find(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data")
    assert x509_data.find(f"{{{DS}}}X509IssuerSerial/{{{DS}}}X509SerialNumber").text == str(
        pki.signer.certificate().serial_number)
    # The receiver takes the first X509Certificate as the signer's.
    first = x509_data.find(f"{{{DS}}}X509Certificate").text
    assert base64.b64decode(first) == pki.signer.certificate().dump()

    # Only what the signature covers comes back: the Message, without the signature.
    (message,) = result.signed
    assert message.tag == f"{{{SEOS_NS}}}Message" and message.find(f"{{{DS}}}Signature") is None

    path = tmp_path / "message.xml"
    path.write_bytes(signed)
    run = xmlsec_verify(pki, path)
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout + run.stderr


def test_signed_seos_message_still_validates_against_the_official_schema(pki: SignerPki, tmp_path: Path) -> None:
    schema = seos_schema(tmp_path / "xsd")
    signed = etree.fromstring(sign_seos_message(seos_message(), pki.signer))
    assert schema.validate(signed), schema.error_log


def test_seos_sha1_for_an_old_peer_is_verified_and_flagged_weak(pki: SignerPki) -> None:
    signed = sign_seos_message(seos_message(), pki.signer, digest="sha1")
    assert b"xmldsig#rsa-sha1" in signed and b"xmldsig#sha1" in signed

    report = verify_seos_message(signed, trust_roots=[pki.root]).report
    assert report.status is SignatureStatus.VALID, report.reason
    assert report.weak == ["RSA-SHA1 signature", "SHA-1 digest"]


def test_seos_tampered_message_is_invalid(pki: SignerPki) -> None:
    signed = sign_seos_message(seos_message(), pki.signer)
    tampered = signed.replace("Молба за издаване".encode(), "Жалба за издаване".encode())

    result = verify_seos_message(tampered, trust_roots=[pki.root])
    assert result.report.status is SignatureStatus.INVALID
    assert "changed after signing" in result.report.reason
    assert result.signed == []  # nothing is handed on as signed


def test_seos_wrapping_a_signed_message_inside_a_forged_one_is_refused(pki: SignerPki) -> None:
    # Given a genuinely signed message,
    genuine = etree.fromstring(sign_seos_message(seos_message(), pki.signer))
    # when an attacker writes a forged message and hides the signed one inside it (DocAddData takes any
    # content), copying its signature to where SEOS expects it,
    forged = etree.fromstring(seos_message(comment="Платете 10 000 лв. по сметка BG00 ATAK"))
    add_data = etree.SubElement(forged.find(f".//{{{SEOS_NS}}}Document"), f"{{{SEOS_NS}}}DocAddData")
    add_data.append(genuine)
    forged.append(etree.fromstring(etree.tostring(genuine.find(f"{{{DS}}}Signature"))))
    wrapped = etree.tostring(forged)
    # then the signature does not verify over the forged message,
    result = verify_seos_message(wrapped, trust_roots=[pki.root])
    assert result.report.status is SignatureStatus.INVALID
    assert result.signed == []

    # and a nested signature alone (the first in document order, not the last child) is not accepted either.
    forged.remove(forged[-1])
    result = verify_seos_message(etree.tostring(forged), trust_roots=[pki.root])
    assert result.report.status is SignatureStatus.INVALID
    assert "wrapping" in result.report.reason


def test_seos_unsigned_foreign_and_hostile_messages_are_reported_not_raised(pki: SignerPki) -> None:
    assert "not signed" in verify_seos_message(seos_message(), trust_roots=[pki.root]).report.reason
    assert "not a SEOS Message" in verify_seos_message(ORDER, trust_roots=[pki.root]).report.reason
    bomb = b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]><m>&a;</m>'
    report = verify_seos_message(bomb, trust_roots=[pki.root]).report
    assert report.status is SignatureStatus.INVALID and "DOCTYPE" in report.reason


@pytest.mark.parametrize(("pattern", "replacement"), [
    (r"<ds:SignatureValue>[^<]*</ds:SignatureValue>", "<ds:SignatureValue/>"),
    (r"<ds:SignatureValue>[^<]*</ds:SignatureValue>", "<ds:SignatureValue>!!!</ds:SignatureValue>"),
    (r"rsa-sha256", "rsa-foo"),
    (r"<ds:DigestMethod [^>]*/>", ""),
    (r"<ds:DigestValue>[^<]*</ds:DigestValue>", "<ds:DigestValue/>"),
    (r"http://www\.w3\.org/(TR/2001/REC-xml-c14n-20010315|2006/12/xml-c14n11)", "urn:unknown-c14n"),
    (r"<ds:X509Certificate>[^<]*</ds:X509Certificate>", "<ds:X509Certificate>AAAA</ds:X509Certificate>"),
    (r"<ds:X509Data>.*</ds:X509Data>", ""),
    (r"<ds:SignedInfo>.*</ds:SignedInfo>", ""),
])
def test_broken_signatures_are_invalid_never_an_exception(pki: SignerPki, pattern: str, replacement: str) -> None:
    signed = sign_seos_message(seos_message(), pki.signer).decode()
    broken = re.sub(pattern, replacement, signed, count=1, flags=re.S).encode()
    assert broken != signed.encode()
    result = verify_seos_message(broken, trust_roots=[pki.root])
    assert result.report.status is SignatureStatus.INVALID and result.signed == []
    xades = sign_xades(ORDER, pki.signer).decode()
    broken = re.sub(pattern, replacement, xades, count=1, flags=re.S).encode()
    assert broken != xades.encode()
    (report,) = verify_xml(broken, trust_roots=[pki.root])
    assert report.status is SignatureStatus.INVALID


def test_seos_expired_and_untrusted_signers(pki: SignerPki) -> None:
    expired = verify_seos_message(sign_seos_message(seos_message(), pki.expired), trust_roots=[pki.root]).report
    assert expired.status is SignatureStatus.EXPIRED and "expired on" in expired.reason

    untrusted = verify_seos_message(sign_seos_message(seos_message(), pki.untrusted), trust_roots=[pki.root]).report
    assert untrusted.status is SignatureStatus.UNTRUSTED and "trust anchor" in untrusted.reason
    # The same signature is fine for whoever trusts that other root.
    assert verify_seos_message(sign_seos_message(seos_message(), pki.untrusted),
                               trust_roots=[pki.other_root]).report.ok


def test_revoked_signers_are_caught_when_the_crl_is_given(pki: SignerPki) -> None:
    crl = ValidationData(crls=[pki.crl])
    seos = sign_seos_message(seos_message(), pki.revoked)
    report = verify_seos_message(seos, trust_roots=[pki.root], validation=crl).report
    assert report.status is SignatureStatus.REVOKED and "revoked on" in report.reason
    (report,) = verify_xml(sign_xades(ORDER, pki.revoked), trust_roots=[pki.root], validation=crl)
    assert report.status is SignatureStatus.REVOKED
    # With the CRL a good signer is checked and says so; without it, the report admits it was not.
    assert "revocation not checked" not in verify_seos_message(
        sign_seos_message(seos_message(), pki.signer), trust_roots=[pki.root], validation=crl).report.reason
    assert "revocation not checked" in verify_seos_message(seos, trust_roots=[pki.root]).report.reason


def test_a_signed_message_cannot_be_signed_again_and_only_seos_messages_are_signed(pki: SignerPki) -> None:
    with pytest.raises(Permanent, match="already signed"):
        sign_seos_message(sign_seos_message(seos_message(), pki.signer), pki.signer)
    with pytest.raises(Permanent, match="root must be Message"):
        sign_seos_message(ORDER, pki.signer)


def test_keys_outside_kurier_sign_xml_through_sign_raw(pki: SignerPki) -> None:
    counting = CountingKey(pki.signer)
    signed = sign_seos_message(seos_message(), counting)
    assert counting.calls == 1
    assert verify_seos_message(signed, trust_roots=[pki.root]).report.ok
    # The adapter is a key object that cannot give the private key away.
    key = as_private_key(counting)
    with pytest.raises(TypeError, match="stays in its key source"):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    assert key.public_key().public_numbers() == cryptography_certificate(
        pki.signer.certificate()).public_key().public_numbers()


@pytest.mark.parametrize(("identifier", "eik"), [
    ("NTRBG-000695089", "000695089"), ("NTRBG-000695088", None), ("VATBG-000695089", None), (None, None),
])
def test_the_signer_eik_comes_from_a_well_formed_ntrbg_organization_identifier(
        identifier: str | None, eik: str | None) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, "Тест")]
    if identifier:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, identifier))
    name = x509.Name(attributes)
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    assert eik_of(asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))) == eik


# --- XAdES ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signer", ["signer", "ec_signer"])
def test_xades_enveloped_is_valid_and_verified_by_xmlsec1(pki: SignerPki, tmp_path: Path, signer: str) -> None:
    key = getattr(pki, signer)
    signed = sign_xades(ORDER, key)

    (result,) = verify_xml_signatures(signed, trust_roots=[pki.root], file_name="zapoved.xml")
    report = result.report
    assert report.status is SignatureStatus.VALID, report.reason
    assert report.format == "xades" and report.level == "B-B" and report.file_name == "zapoved.xml"
    assert report.signer_eik == EIK and report.signed_at is not None and len(report.chain) == 3
    (document,) = result.signed  # the document, not the signature's own properties
    assert document.findtext("{urn:kurier:test}Suma") == "10"

    path = tmp_path / "zapoved.xml"
    path.write_bytes(signed)
    run = xmlsec_verify(pki, path)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("name", ["zapoved.xml", "Заповед № 7.xml"])
def test_xades_detached_is_valid_and_verified_by_xmlsec1(pki: SignerPki, tmp_path: Path, name: str) -> None:
    signature = sign_xades(ORDER, pki.signer, "detached", file_name=name)
    assert etree.fromstring(signature).tag == f"{{{DS}}}Signature"

    (result,) = verify_xml_signatures(signature, trust_roots=[pki.root], detached={name: ORDER})
    assert result.report.status is SignatureStatus.VALID, result.report.reason
    assert [e.findtext("{urn:kurier:test}Nomer") for e in result.signed] == ["OA-01-7"]

    # xmlsec1 fetches the signed file by its URI, beside the signature.
    (tmp_path / name).write_bytes(ORDER)
    (tmp_path / "signature.xades.xml").write_bytes(signature)
    run = xmlsec_verify(pki, tmp_path / "signature.xades.xml")
    assert run.returncode == 0, run.stderr

    changed = ORDER.replace(b"<Suma>10</Suma>", b"<Suma>10000</Suma>")
    (report,) = verify_xml(signature, trust_roots=[pki.root], detached={name: changed})
    assert report.status is SignatureStatus.INVALID and "changed after signing" in report.reason
    (report,) = verify_xml(signature, trust_roots=[pki.root])  # the signed file was not given
    assert report.status is SignatureStatus.INVALID and "resolve" in report.reason


def test_xades_tampered_expired_untrusted(pki: SignerPki) -> None:
    tampered = sign_xades(ORDER, pki.signer).replace(b"<Suma>10</Suma>", b"<Suma>99</Suma>")
    (report,) = verify_xml(tampered, trust_roots=[pki.root])
    assert report.status is SignatureStatus.INVALID and "changed after signing" in report.reason

    (report,) = verify_xml(sign_xades(ORDER, pki.expired), trust_roots=[pki.root])
    assert report.status is SignatureStatus.EXPIRED
    (report,) = verify_xml(sign_xades(ORDER, pki.untrusted), trust_roots=[pki.root])
    assert report.status is SignatureStatus.UNTRUSTED

    (report,) = verify_xml(ORDER, trust_roots=[pki.root])
    assert report.status is SignatureStatus.INVALID and "no XAdES signature" in report.reason


def test_xades_wrapping_attack_hands_on_only_the_signed_element(pki: SignerPki) -> None:
    # Given a XAdES signature over one element by its Id (as forms that sign a part of a document do),
    document = etree.fromstring(b'<Plashtane xmlns="urn:kurier:test"><Nareditel Id="p1"><Suma>10</Suma>'
                                b'</Nareditel></Plashtane>')
    signer = XAdESSigner(method=SignatureConstructionMethod.enveloped,
                         c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1)
    certs = [cryptography_certificate(c) for c in [pki.signer.certificate(), *pki.signer.chain()]]
    signed = signer.sign(document, key=as_private_key(pki.signer), cert=certs, reference_uri="#p1",
                         always_add_key_value=False)
    # when an attacker moves the signed element out of the way and puts a forged one in its place,
    original = signed.find("{urn:kurier:test}Nareditel")
    signed.remove(original)
    hidden = etree.SubElement(signed, "{urn:kurier:test}Prilozhenie")
    hidden.append(original)
    forged = etree.Element("{urn:kurier:test}Nareditel", Id="p2")
    etree.SubElement(forged, "{urn:kurier:test}Suma").text = "10000"
    signed.insert(0, forged)
    signed.append(signed.find(f"{{{DS}}}Signature"))  # the signature stays last

    (result,) = verify_xml_signatures(etree.tostring(signed), trust_roots=[pki.root])
    # then the signature is still a valid signature of the original element, and only that is handed on:
    assert result.report.status is SignatureStatus.VALID, result.report.reason
    sums = [e.findtext("{urn:kurier:test}Suma") for e in result.signed]
    assert sums == ["10"]
    assert b"10000" not in b"".join(etree.tostring(e) for e in result.signed)


def test_xades_refuses_sha1_and_needs_a_file_name_for_detached(pki: SignerPki) -> None:
    with pytest.raises(Permanent, match="SHA-1"):
        sign_xades(ORDER, pki.signer, digest="sha1")
    with pytest.raises(Permanent, match="file_name"):
        sign_xades(ORDER, pki.signer, "detached")
