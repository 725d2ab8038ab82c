"""What the SEOS XML-DSig and XAdES share: hardened reading, algorithm choice, KeyInfo, verification.

Verification here has one rule against signature wrapping: the caller gets back only what the
signature covers (signxml's ``signed_xml``, re-parsed from the canonical bytes that were digested),
never the document as it arrived. Anything outside the signed references (a forged element put
where the signed one was, a comment, a second unsigned copy) cannot reach the caller as signed.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml import DigestAlgorithm, SignatureMethod, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature

from schemas.errors import Refused
from schemas.limits import Limits
from schemas.xmlsafe import parse_xml
from signing.certcheck import ValidationData, check_chain, eik_of, subject_of
from signing.rawkey import cryptography_certificate
from signing.report import SignatureReport, SignatureStatus

if TYPE_CHECKING:
    from signing.keys import KeySource

__all__ = [
    "DS",
    "Utf8Copies",
    "XmlVerification",
    "read_xml",
    "signature_algorithms",
    "x509_key_info",
]


class Utf8Copies:
    """Mixed into signxml's signers and verifiers: their internal copies of a tree keep non-ASCII names.

    signxml copies trees with ``etree.tostring`` in its default ASCII encoding, which turns the Cyrillic
    element names many AIS documents use (``<Писмо>``) into character references, not allowed in a name:
    the copy does not parse. UTF-8 copies are the same tree.
    """

    def _tostring(self, xml_node: Any, **kwargs: Any) -> Any:
        if "method" not in kwargs and "encoding" not in kwargs:
            kwargs["encoding"] = "utf-8"
        return super()._tostring(xml_node, **kwargs)  # type: ignore[misc]

DS = "http://www.w3.org/2000/09/xmldsig#"
_MAX_XML = Limits().max_xml_bytes
_SHA1: dict[str, str] = {
    SignatureMethod.RSA_SHA1.value: "RSA-SHA1 signature", SignatureMethod.ECDSA_SHA1.value: "ECDSA-SHA1 signature",
    DigestAlgorithm.SHA1.value: "SHA-1 digest",
}


@dataclass(frozen=True)
class XmlVerification:
    """One XML signature's report, and what it covers (empty unless the signature value and digests verify)."""

    report: SignatureReport
    signed: list[etree._Element] = field(default_factory=list)  # the covered data, re-parsed from digested bytes
    certificate: asn1_x509.Certificate | None = None  # the signing certificate (SEOS compares its serial)


def read_xml(data: bytes, *, what: str, max_bytes: int = _MAX_XML) -> etree._Element:
    """Parse untrusted XML for signing or verifying: xmlsafe's refusals, but comments and PIs kept.

    xmlsafe strips comments and processing instructions; a signature digests processing instructions
    (canonical XML keeps them), so the tree a signature is checked on is parsed again without stripping.
    The first parse is what refuses DOCTYPEs, entities, bad encodings and oversized files.
    """
    parse_xml(data, what=what, max_bytes=max_bytes)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    return etree.fromstring(data, parser=parser)


def signature_algorithms(key: KeySource, digest: str) -> tuple[SignatureMethod, DigestAlgorithm]:
    if digest not in ("sha256", "sha1", "sha384", "sha512"):
        raise ValueError(f"digest {digest!r}: use sha256 (default), sha384, sha512, or sha1 for old peers")
    is_ec = isinstance(cryptography_certificate(key.certificate()).public_key(), ec.EllipticCurvePublicKey)
    method = SignatureMethod[("ECDSA_" if is_ec else "RSA_") + digest.upper()]
    return method, DigestAlgorithm[digest.upper()]


def x509_key_info(key: KeySource) -> etree._Element:
    """``KeyInfo/X509Data``: issuer and serial, the signing certificate first, then the intermediates."""
    cert = cryptography_certificate(key.certificate())
    key_info = etree.Element(f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
    data = etree.SubElement(key_info, f"{{{DS}}}X509Data")
    issuer_serial = etree.SubElement(data, f"{{{DS}}}X509IssuerSerial")
    etree.SubElement(issuer_serial, f"{{{DS}}}X509IssuerName").text = cert.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, f"{{{DS}}}X509SerialNumber").text = str(cert.serial_number)
    for c in [key.certificate(), *key.chain()]:
        etree.SubElement(data, f"{{{DS}}}X509Certificate").text = base64.b64encode(c.dump()).decode()
    return key_info


def key_info_certificates(signature: etree._Element) -> list[asn1_x509.Certificate]:
    out: list[asn1_x509.Certificate] = []
    for node in signature.iterfind(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate"):
        try:
            out.append(asn1_x509.Certificate.load(base64.b64decode("".join((node.text or "").split()))))
        except ValueError:
            continue  # an unreadable certificate cannot be the signer's; a missing signer is reported below
    return out


def weaknesses(signature: etree._Element) -> list[str]:
    found: list[str] = []
    for node in signature.iter(f"{{{DS}}}SignatureMethod", f"{{{DS}}}DigestMethod"):
        uri = node.get("Algorithm", "")
        label = _SHA1.get(uri)
        if label and label not in found:
            found.append(label)
    return found


def verify_one(
    verifier: XMLVerifier, data: bytes, signature: etree._Element, *, fmt: str, file_name: str | None,
    signer_cert: asn1_x509.Certificate | None, trust_roots: Sequence[asn1_x509.Certificate],
    moment: datetime | None, config: Any, signed_at: datetime | None = None,
    uri_resolver: Callable[[str], etree._Element | None] | None = None, validation: ValidationData | None = None,
    **verify_args: Any,
) -> tuple[XmlVerification, list[Any]]:
    """Check the signature value and digests with signxml, then the signer's chain; never raises for bad input."""

    def report(status: SignatureStatus, reason: str, **extra: Any) -> SignatureReport:
        who = {} if signer_cert is None else {"signer": subject_of(signer_cert), "signer_eik": eik_of(signer_cert)}
        return SignatureReport(format=fmt, file_name=file_name, status=status, reason=reason,
                               weak=weaknesses(signature), signed_at=signed_at, **who, **extra)

    if signer_cert is None:
        return XmlVerification(report(SignatureStatus.INVALID, "the signature carries no X.509 certificate of its "
                                      "signer (KeyInfo/X509Data/X509Certificate)")), []
    crypto_cert = cryptography_certificate(signer_cert)
    # signxml checks the certificate's validity at verification_time and would call an expired signer a
    # broken signature: it is asked only about the bytes, at a time the certificate was valid; the chain,
    # expiry and trust are decided afterwards, with the reason each deserves.
    config = dataclasses.replace(config, verification_time=crypto_cert.not_valid_before_utc)
    try:
        results = verifier.verify(data, x509_cert=crypto_cert, expect_config=config,
                                  uri_resolver=uri_resolver, **verify_args)
    except InvalidDigest as exc:
        reason = f"the signed content was changed after signing ({exc})"
        return XmlVerification(report(SignatureStatus.INVALID, reason), certificate=signer_cert), []
    except InvalidCertificate as exc:
        return XmlVerification(report(SignatureStatus.INVALID, f"the signing certificate is unusable: {exc}"),
                               certificate=signer_cert), []
    except InvalidSignature as exc:
        return XmlVerification(report(SignatureStatus.INVALID, "the signature value does not match the signed "
                                      f"information or the signer's key ({exc})"), certificate=signer_cert), []
    except (InvalidInput, etree.LxmlError, ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
        # A hostile or broken signature (an empty SignatureValue, a schema-invalid SignedInfo, unknown
        # algorithms) trips signxml in many ways: each is a signature that cannot be accepted.
        return XmlVerification(report(SignatureStatus.INVALID, f"the signature cannot be checked: {exc}"),
                               certificate=signer_cert), []
    results = results if isinstance(results, list) else [results]
    others = [*key_info_certificates(signature)]
    chain = check_chain(signer_cert, trust_roots=trust_roots, others=others, moment=moment, data=validation)
    return XmlVerification(report(chain.status, chain.reason, chain=chain.chain), certificate=signer_cert), results


def refused_report(fmt: str, file_name: str | None, exc: Refused) -> SignatureReport:
    return SignatureReport(format=fmt, file_name=file_name, status=SignatureStatus.INVALID,
                           reason=f"the XML cannot be read safely: {exc}")


def signer_certificate(signature: etree._Element) -> asn1_x509.Certificate | None:
    """The first X509Certificate in KeyInfo: the one the SEOS reference receiver and signxml's signer take."""
    certs = key_info_certificates(signature)
    return certs[0] if certs else None
