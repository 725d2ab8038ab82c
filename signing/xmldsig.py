"""The SEOS message signature: an enveloped XML-DSig over the whole ``Message`` (domain.md §3).

Signing writes what the reference implementation's peers expect: ``Reference URI=""`` with the
enveloped-signature transform only (inclusive C14N 1.0 is then implied, as .NET's defaults do),
inclusive C14N 1.0 for ``SignedInfo``, ``KeyInfo/X509Data`` with ``X509IssuerSerial`` and the signing
certificate first, and the signature as the last child of ``Message``. RSA-SHA256 by default;
RSA-SHA1 only when a peer's configuration asks for it.

Verification is stricter than the reference receiver (and says so in each reason): the first
``ds:Signature`` must be the last child of ``Message``, sign ``URI=""`` with the enveloped transform,
and its signer's chain must lead to a configured trust anchor. SHA-1 is accepted and listed in the
report's ``weak``. The caller gets back only what the signature covers (see :mod:`signing.xmlcommon`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from asn1crypto import x509 as asn1_x509
from lxml import etree
from signxml import CanonicalizationMethod, SignatureConfiguration, SignatureMethod, XMLSigner, XMLVerifier
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod

from schemas.errors import Permanent, Refused
from signing.certcheck import ValidationData
from signing.rawkey import as_private_key
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
    x509_key_info,
)

if TYPE_CHECKING:
    from signing.keys import KeySource

__all__ = ["SEOS_NS", "sign_seos_message", "verify_seos_message"]

SEOS_NS = "http://schemas.egov.bg/messaging/v1"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_FORMAT = "xmldsig"


class _Verifier(Utf8Copies, XMLVerifier):
    pass


class _SeosSigner(Utf8Copies, XMLSigner):
    """signxml's signer, allowed SHA-1 when (and only when) a peer's configuration asks for it."""

    def __init__(self, *, sha1_allowed: bool, **kwargs: object) -> None:
        self._sha1_allowed = sha1_allowed
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def check_deprecated_methods(self) -> None:
        if not self._sha1_allowed:
            super().check_deprecated_methods()


def sign_seos_message(message: bytes, key: KeySource, *, digest: str = "sha256") -> bytes:
    """Sign a SEOS ``Message`` (UTF-8 bytes out); ``digest="sha1"`` only for a peer that needs RSA-SHA1."""
    root = read_xml(message, what="the SEOS message to sign")
    if root.tag != f"{{{SEOS_NS}}}Message":
        raise Permanent(f"cannot sign {root.tag!r} as a SEOS message: the root must be Message in {SEOS_NS}")
    if root.find(f"{{{DS}}}Signature") is not None:
        raise Permanent("the SEOS message is already signed (it has a ds:Signature); sign the unsigned message")
    method, digest_alg = signature_algorithms(key, digest)
    signer = _SeosSigner(
        sha1_allowed=digest == "sha1", method=SignatureConstructionMethod.enveloped,
        signature_algorithm=method, digest_algorithm=digest_alg,
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    signed = signer.sign(root, key=as_private_key(key), key_info=x509_key_info(key),
                         exclude_c14n_transform_element=True)
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="utf-8"))


def _seos_config() -> SignatureConfiguration:
    return SignatureConfiguration(
        location="./", expect_references=1,
        # Old .NET peers sign RSA-SHA1 / SHA-1: accepted here, flagged weak in the report.
        signature_methods=frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC")),
        digest_algorithms=frozenset(DigestAlgorithm),
        # No c14n transform in the Reference means inclusive C14N 1.0 (XML-DSig §4.4.3.2), as .NET writes it.
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
    )


def verify_seos_message(
    data: bytes, *, trust_roots: Sequence[asn1_x509.Certificate], moment: datetime | None = None,
    validation: ValidationData | None = None,
) -> XmlVerification:
    """Check a received SEOS message's signature; ``signed`` is the Message as signed (without the signature).

    Never raises for a bad or hostile message: the report says what is wrong.
    """
    try:
        root = read_xml(data, what="the SEOS message")
    except Refused as exc:
        return XmlVerification(refused_report(_FORMAT, None, exc))

    def invalid(reason: str) -> XmlVerification:
        return XmlVerification(SignatureReport(format=_FORMAT, status=SignatureStatus.INVALID, reason=reason))

    if root.tag != f"{{{SEOS_NS}}}Message":
        return invalid(f"the root element is {root.tag!r}, not a SEOS Message")
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    if not signatures:
        return invalid("the message is not signed (no ds:Signature)")
    signature = signatures[0]  # the first in document order, as the reference receiver takes it
    if signature.getparent() is not root or any(isinstance(n.tag, str) for n in signature.itersiblings()):
        # Anywhere else, the signature could sign a nested copy while the outer Message says something else.
        return invalid("the first ds:Signature is not the last child of Message, where SEOS puts the message "
                       "signature (possible signature wrapping)")
    references = signature.findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    if len(references) != 1 or references[0].get("URI") != "":
        return invalid('the message signature must have exactly one Reference, with URI="" (the whole Message)')
    transforms = [t.get("Algorithm") for t in references[0].iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform")]
    if _ENVELOPED not in transforms:
        return invalid("the message signature's Reference lacks the enveloped-signature transform")
    verification, results = verify_one(
        _Verifier(), data, signature, fmt=_FORMAT, file_name=None, signer_cert=signer_certificate(signature),
        trust_roots=trust_roots, moment=moment, config=_seos_config(), validation=validation,
    )
    signed = [r.signed_xml for r in results if r.signed_xml is not None]
    return XmlVerification(verification.report, signed, verification.certificate)
