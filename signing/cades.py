"""CAdES-B detached signatures on any file, and their verification, through pyhanko's CMS machinery.

The signature is a DER ``ContentInfo`` (``.p7s``) beside the file: pyhanko's CAdES attributes
(``signing-certificate-v2``, ``signing-time``, ``message-digest``) signed by the key source's pyhanko
signer, so a PKCS#11 or remote key signs exactly as a local one. Files are hashed in chunks: a large
file is never read whole into memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.general import SignedDataCerts, extract_certificate_info
from pyhanko.sign.validation.generic_cms import async_validate_detached_cms
from pyhanko.sign.validation.utils import CMSAlgorithmUsagePolicy
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import DisallowWeakAlgorithmsPolicy

from schemas.errors import Permanent
from signing.certcheck import ValidationData, check_chain, eik_of, subject_of
from signing.report import SignatureReport, SignatureStatus

if TYPE_CHECKING:
    from signing.keys import KeySource

__all__ = ["sign_cades", "verify_cades"]

_FORMAT = "cades"
_BROKEN = frozenset({"md2", "md5"})
# SHA-1 is accepted (old signers use it) and flagged weak in the report, like XML signatures; MD5 is not.
_ALGORITHMS = CMSAlgorithmUsagePolicy.lift_policy(DisallowWeakAlgorithmsPolicy(weak_hash_algos=_BROKEN))


def _open(data: bytes | Path, stack: ExitStack) -> bytes | IO[bytes]:
    return data if isinstance(data, bytes) else stack.enter_context(Path(data).open("rb"))


def sign_cades(data: bytes | Path, key: KeySource, *, digest_algorithm: str = "sha256") -> bytes:
    """A detached CAdES-B signature (DER) of ``data`` (bytes, or a file path read in chunks)."""
    signer = key.pdf_signer()
    with ExitStack() as stack:
        content = _open(data, stack)
        # The hub's workers are synchronous; pyhanko's signing API is async (remote signers await I/O).
        signed = asyncio.run(signer.async_sign_general_data(content, digest_algorithm, detached=True,
                                                            use_cades=True))
    return bytes(signed.dump())


def verify_cades(
    data: bytes | Path, signature: bytes, trust_roots: Sequence[asn1_x509.Certificate], *,
    file_name: str | None = None, moment: datetime | None = None, validation: ValidationData | None = None,
) -> SignatureReport:
    """Check a detached CAdES/CMS signature of ``data`` against ``trust_roots``; never raises for bad input."""

    def report(status: SignatureStatus, reason: str, **extra: Any) -> SignatureReport:
        return SignatureReport(format=_FORMAT, file_name=file_name, status=status, reason=reason, **extra)

    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            return report(SignatureStatus.INVALID, "the signature file is CMS, but not SignedData")
        signed_data = info["content"]
        certs: SignedDataCerts = extract_certificate_info(signed_data)
    except (ValueError, TypeError, KeyError) as exc:
        return report(SignatureStatus.INVALID, f"the signature file is not a CMS signature ({exc})")
    signer_cert = certs.signer_cert
    who = {"signer": subject_of(signer_cert), "signer_eik": eik_of(signer_cert)}
    # pyhanko judges the bytes (digest, signature value, signing-certificate-v2 binding); the chain is judged
    # once, by check_chain, as for XML signatures. Trusting the signer's own certificate here keeps pyhanko
    # from building (and logging) a second verdict on the path.
    context = ValidationContext(trust_roots=[signer_cert], allow_fetching=False, moment=moment)
    try:
        with ExitStack() as stack:
            status = asyncio.run(async_validate_detached_cms(_open(data, stack), signed_data,
                                                             signer_validation_context=context,
                                                             algorithm_policy=_ALGORITHMS))
    except (ValueError, TypeError, KeyError, Permanent) as exc:
        return report(SignatureStatus.INVALID, f"the CMS signature cannot be checked ({exc})", **who)
    weak = ["SHA-1 digest"] if status.md_algorithm == "sha1" else []
    signed_at = status.signer_reported_dt
    if status.md_algorithm in _BROKEN:
        return report(SignatureStatus.INVALID, f"the signature uses {status.md_algorithm.upper()}, a broken digest "
                      "that proves nothing", signed_at=signed_at, **who)
    # The signature value is over the signed attributes, the content's digest is one of them: a changed file
    # leaves the value valid and the digest wrong; a forged value is wrong whatever the file.
    if not status.valid:
        return report(SignatureStatus.INVALID, "the signature value does not verify with the signer's key",
                      signed_at=signed_at, weak=weak, **who)
    if not status.intact:
        return report(SignatureStatus.INVALID, "the file was changed after signing (its digest does not match "
                      "the signed message-digest)", signed_at=signed_at, weak=weak, **who)
    level: str | None = "B-B"
    if not _binds_certificate(signed_data):
        level = None  # plain CMS (openssl cms -sign without -cades): verifiable, but the signer is not bound
        weak.append("no signing-certificate-v2 attribute: plain CMS, not CAdES")
    chain = check_chain(signer_cert, trust_roots=trust_roots, others=certs.other_certs, moment=moment,
                        data=validation)
    return report(chain.status, chain.reason, chain=chain.chain, signed_at=signed_at, weak=weak, level=level, **who)


def _binds_certificate(signed_data: cms.SignedData) -> bool:
    attributes = signed_data["signer_infos"][0]["signed_attrs"]
    kinds = {a["type"].native for a in attributes} if attributes.native else set()
    return bool(kinds & {"signing_certificate_v2", "signing_certificate"})
