"""Validation of the PAdES signatures in a PDF: one :class:`SignatureReport` per signature.

pyhanko checks integrity, the signature value, the chain to the given trust anchors and the
certificate's validity and revocation. Revocation data comes from the PDF's DSS (B-LT) when it is
there, else from the OCSP responders and CRL distribution points the certificates name; when neither
answers the check is soft (``revocation: soft-fail``) and the report says so only through pyhanko's
verdict. The AdES sub-indication decides the status, so an operator reads *why*.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from signing.report import SignatureReport, SignatureStatus

if TYPE_CHECKING:
    from asn1crypto import x509

__all__ = ["subject_eik", "validate_pdf"]


def subject_eik(cert: x509.Certificate) -> str | None:
    """The EIK from organizationIdentifier ``NTRBG-<EIK>``, as Bulgarian QES certificates carry it."""
    value = cert.subject.native.get("organization_identifier")
    if isinstance(value, str) and value.startswith("NTRBG-"):
        return value.removeprefix("NTRBG-")
    return None


_WHY = {
    "REVOKED": (SignatureStatus.REVOKED, "the signing certificate was revoked before the signing time"),
    "REVOKED_NO_POE": (SignatureStatus.REVOKED, "the signing certificate is revoked, and nothing proves the "
                       "signature was made before that"),
    "REVOKED_CA_NO_POE": (SignatureStatus.REVOKED, "a CA certificate of the chain is revoked"),
    "EXPIRED": (SignatureStatus.EXPIRED, "the signing certificate had expired at the signing time"),
    "OUT_OF_BOUNDS_NO_POE": (SignatureStatus.EXPIRED, "the signing certificate was not valid (expired or not "
                             "yet valid) at the signing time"),
    "OUT_OF_BOUNDS_NOT_REVOKED": (SignatureStatus.EXPIRED, "the signing certificate has expired"),
    "NOT_YET_VALID": (SignatureStatus.EXPIRED, "the signing certificate was not yet valid at the signing time"),
    "NO_CERTIFICATE_CHAIN_FOUND": (SignatureStatus.UNTRUSTED, "no chain from the signing certificate to a "
                                   "trusted root"),
    "CHAIN_CONSTRAINTS_FAILURE": (SignatureStatus.UNTRUSTED, "the certificate chain breaks a constraint"),
    "HASH_FAILURE": (SignatureStatus.INVALID, "the document was changed after signing"),
    "SIG_CRYPTO_FAILURE": (SignatureStatus.INVALID, "the signature value does not verify"),
    "TRY_LATER": (SignatureStatus.INDETERMINATE, "revocation data could not be obtained; try later"),
}


def _status(st: Any) -> tuple[SignatureStatus, str]:
    if not st.intact:
        return SignatureStatus.INVALID, "the document was changed after signing (its digest does not match)"
    if not st.valid:
        return SignatureStatus.INVALID, "the signature value does not verify"
    if st.modification_level is not None and not st.docmdp_ok:
        return SignatureStatus.INVALID, "the document was changed after signing (an update the signature forbids)"
    indic = st.trust_problem_indic
    if st.revoked:
        return _WHY["REVOKED"]
    if indic is not None:
        status, why = _WHY.get(indic.name, (SignatureStatus.INDETERMINATE, "the chain could not be validated"))
        return status, f"{why} ({indic.name})"
    if not st.trusted:
        return SignatureStatus.UNTRUSTED, "no chain from the signing certificate to a trusted root"
    ts = st.timestamp_validity
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        return SignatureStatus.INVALID if not (ts.intact and ts.valid) else SignatureStatus.UNTRUSTED, \
            "the signature's timestamp does not verify or is not from a trusted TSA"
    return SignatureStatus.VALID, "the signature is intact and the signer's certificate is trusted"


def _level(st: Any, has_dss: bool) -> str:
    if st.timestamp_validity is None:
        return "B-B"
    return "B-LT" if has_dss else "B-T"


def validate_pdf(path: Path, trust_roots: list[x509.Certificate], *, allow_fetching: bool = True,
                 file_name: str | None = None) -> list[SignatureReport]:
    """Validate every signature in the PDF at ``path`` against ``trust_roots``; one report each.

    A PDF with no signature gives one INVALID report saying so: what was expected to be signed is not.
    """
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError

    name = file_name or path.name
    with path.open("rb") as fh:
        try:
            reader = PdfFileReader(fh, strict=False)
            signatures = reader.embedded_regular_signatures
        except (PdfError, ValueError, KeyError) as exc:
            return [SignatureReport(format="pades", file_name=name, status=SignatureStatus.INVALID,
                                    reason=f"not a readable PDF: {exc}")]
        if not signatures:
            return [SignatureReport(format="pades", file_name=name, status=SignatureStatus.INVALID,
                                    reason="the PDF carries no signature")]
        kwargs: dict[str, Any] = {"trust_roots": trust_roots, "allow_fetching": allow_fetching,
                                  "revocation_mode": "soft-fail"}
        try:
            context = DocumentSecurityStore.read_dss(reader).as_validation_context(dict(kwargs))
            has_dss = True
        except NoDSSFoundError:
            from pyhanko_certvalidator import ValidationContext

            context, has_dss = ValidationContext(**kwargs), False
        reports = []
        for sig in signatures:
            reports.append(_report(sig, context, has_dss, name, validate_pdf_signature))
        return reports


def _report(sig: Any, context: Any, has_dss: bool, name: str, validate: Any) -> SignatureReport:
    cert = sig.signer_cert
    who = {"signer": cert.subject.human_friendly, "signer_eik": subject_eik(cert)} if cert is not None else {}
    try:
        st = validate(sig, signer_validation_context=context, ts_validation_context=context)
    except Exception as exc:  # a broken CMS, a byte range that does not cover the file: never passed silently
        return SignatureReport(format="pades", file_name=name, status=SignatureStatus.INVALID,
                               reason=f"the signature could not be checked: {type(exc).__name__}: {exc}", **who)
    status, reason = _status(st)
    path = st.validation_path
    chain = [c.subject.human_friendly for c in reversed(list(path))] if path is not None else [
        cert.subject.human_friendly]
    ts = st.timestamp_validity
    weak = [f"{st.md_algorithm} digest"] if st.md_algorithm in ("sha1", "md5") else []
    return SignatureReport(format="pades", file_name=name, status=status, reason=reason,
                           signed_at=st.signer_reported_dt, timestamp=ts.timestamp if ts is not None else None,
                           chain=chain, weak=weak, level=_level(st, has_dss), **who)
