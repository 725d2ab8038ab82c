"""XAdES-B signatures on XML documents, enveloped or detached, and their verification.

signxml's XAdES signer writes ``SigningTime`` and ``SigningCertificateV2`` in the signed properties.
Canonicalization is C14N 1.1: signxml 5.2's exclusive C14N fails its own XAdES verification
(measurements.md), and 1.1 is what XML-DSig 1.1 recommends. ``KeyValue`` is not written: the
certificate says which key signed, and a second, unbound key in KeyInfo is a known hazard.

*Enveloped*: the signature is the last child of the document's root and covers the whole document.
*Detached*: the signature is a document of its own (``ds:Signature`` as the root) whose first
Reference names the signed file (``URI="<file name>"``, canonicalized); give the verifier the file's
bytes under that name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote

from asn1crypto import x509 as asn1_x509
from lxml import etree
from signxml import CanonicalizationMethod, SignatureMethod
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod
from signxml.xades import XAdESSignatureConfiguration, XAdESSigner, XAdESVerifier

from schemas.errors import Permanent, Refused
from signing.certcheck import ValidationData
from signing.rawkey import as_private_key, cryptography_certificate
from signing.report import SignatureReport, SignatureStatus
from signing.xmlcommon import (
    DS,
    Utf8Copies,
    XmlVerification,
    read_xml,
    refused_report,
    signature_algorithms,
    signer_certificate,
    verify_one,
)

if TYPE_CHECKING:
    from signing.keys import KeySource

__all__ = ["sign_xades", "verify_xml", "verify_xml_signatures"]

XADES = "http://uri.etsi.org/01903/v1.3.2#"
_FORMAT = "xades"


def sign_xades(
    xml: bytes, key: KeySource, packaging: Literal["enveloped", "detached"] = "enveloped", *,
    file_name: str | None = None, digest: str = "sha256",
) -> bytes:
    """XAdES-B over ``xml``: the signed document (enveloped) or the signature document (detached)."""
    root = read_xml(xml, what=file_name or "the XML document to sign")
    method, digest_alg = signature_algorithms(key, digest)
    if digest == "sha1":
        raise Permanent("XAdES signatures are not made with SHA-1; use sha256 or stronger")
    crypto_certs = [cryptography_certificate(c) for c in [key.certificate(), *key.chain()]]
    options: dict[str, Any] = {}
    if packaging == "enveloped":
        construction = SignatureConstructionMethod.enveloped
    elif packaging == "detached":
        if not file_name or "/" in file_name:
            raise Permanent("a detached XAdES signature names the signed file: give file_name (a name, not a path)")
        construction = SignatureConstructionMethod.detached
        # The Reference URI is the file name, percent-encoded (Cyrillic and spaces are not URI characters).
        # signxml cannot resolve it and digests the canonical form of `root` under it: the file's content.
        options["reference_uri"] = quote(file_name)
    else:
        raise Permanent(f"unknown XAdES packaging {packaging!r}: enveloped or detached")
    signer = _Signer(method=construction, signature_algorithm=method, digest_algorithm=digest_alg,
                         c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_1)
    signed = signer.sign(root, key=as_private_key(key), cert=crypto_certs, always_add_key_value=False, **options)
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="utf-8"))


class _Signer(Utf8Copies, XAdESSigner):
    pass


class _OneOf(Utf8Copies, XAdESVerifier):
    """signxml verifies the first signature it finds; this one verifies the signature with a given Id or position."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self._index = index

    def _get_signature(self, root: etree._Element) -> etree._Element:
        return _signatures(root)[self._index]


def _signatures(root: etree._Element) -> list[etree._Element]:
    if root.tag == f"{{{DS}}}Signature":
        return [root]
    return [child for child in root if child.tag == f"{{{DS}}}Signature"]


def _config() -> XAdESSignatureConfiguration:
    return XAdESSignatureConfiguration(
        location="./", expect_references=True,
        signature_methods=frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC")),
        digest_algorithms=frozenset(DigestAlgorithm),
    )


def _signing_time(signature: etree._Element) -> datetime | None:
    node = signature.find(f".//{{{XADES}}}SignedSignatureProperties/{{{XADES}}}SigningTime")
    try:
        return datetime.fromisoformat((node.text or "").strip().replace("Z", "+00:00")) if node is not None else None
    except ValueError:
        return None


def verify_xml_signatures(
    data: bytes, *, trust_roots: Sequence[asn1_x509.Certificate], file_name: str | None = None,
    detached: Mapping[str, bytes] | None = None, moment: datetime | None = None,
    validation: ValidationData | None = None,
) -> list[XmlVerification]:
    """Every XAdES signature of ``data`` (enveloped in its root, or ``data`` a detached signature).

    ``detached`` maps the file names a detached signature references to their bytes. Each result's
    ``signed`` holds only the data the signature covers, never its own signed properties.
    """
    try:
        root = read_xml(data, what=file_name or "the XML document")
    except Refused as exc:
        return [XmlVerification(refused_report(_FORMAT, file_name, exc))]
    signatures = _signatures(root)
    if not signatures:
        return [XmlVerification(SignatureReport(
            format=_FORMAT, file_name=file_name, status=SignatureStatus.INVALID,
            reason="no XAdES signature found (a ds:Signature child of the root, or a detached signature document)"))]
    out = []
    for index, signature in enumerate(signatures):
        out.append(_verify_signature(data, signature, index, trust_roots=trust_roots, file_name=file_name,
                                     detached=detached or {}, moment=moment, validation=validation))
    return out


def _verify_signature(
    data: bytes, signature: etree._Element, index: int, *, trust_roots: Sequence[asn1_x509.Certificate],
    file_name: str | None, detached: Mapping[str, bytes], moment: datetime | None,
    validation: ValidationData | None,
) -> XmlVerification:
    def resolve(uri: str) -> etree._Element | None:
        content = detached.get(unquote(uri), detached.get(uri))
        try:
            return read_xml(content, what=uri) if content is not None else None
        except Refused:
            return None  # reported as a reference that cannot be resolved: the signature is not accepted

    extra: dict[str, Any] = {"uri_resolver": resolve}
    verification, results = verify_one(
        _OneOf(index), data, signature, fmt=_FORMAT, file_name=file_name, signer_cert=signer_certificate(signature),
        trust_roots=trust_roots, moment=moment, config=_config(), signed_at=_signing_time(signature),
        validation=validation, **extra,
    )
    covered = [r.signed_xml for r in results if r.signed_xml is not None and not _is_own_property(r)]
    if verification.report.status is not SignatureStatus.INVALID:
        verification = XmlVerification(verification.report.model_copy(update={"level": "B-B"}), covered,
                                       verification.certificate)
    return verification


def _is_own_property(result: Any) -> bool:
    """The signature's own SignedProperties and KeyInfo references are not the caller's data."""
    tag = result.signed_xml.tag
    return bool(tag in (f"{{{XADES}}}SignedProperties", f"{{{DS}}}KeyInfo"))


def verify_xml(
    data: bytes, *, trust_roots: Sequence[asn1_x509.Certificate], file_name: str | None = None,
    detached: Mapping[str, bytes] | None = None, moment: datetime | None = None,
    validation: ValidationData | None = None,
) -> list[SignatureReport]:
    """The reports of :func:`verify_xml_signatures`, for callers that only need the verdicts."""
    return [v.report for v in verify_xml_signatures(data, trust_roots=trust_roots, file_name=file_name,
                                                     detached=detached, moment=moment, validation=validation)]
