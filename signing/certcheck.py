"""Who signed, and may we trust them: the certificate half of every XML and CMS signature report.

:func:`check_chain` builds a path from the signer's certificate to one of the configured trust anchors
(pyhanko-certvalidator, with the certificates the signature itself carries as candidate intermediates)
and says in one sentence why it failed, mapped onto :class:`~signing.report.SignatureStatus`. Nothing
is fetched from the network: revocation is checked against the CRLs and OCSP responses handed in,
"where the data is there" (issue 5), and otherwise soft-fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asn1crypto import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)

from schemas.identifiers import eik_is_valid
from signing.report import SignatureStatus

__all__ = ["ChainCheck", "ValidationData", "check_chain", "eik_of", "subject_of"]

_EIK_PREFIX = "NTRBG-"  # ETSI EN 319 412-1 semantics identifier: national trade register, Bulgaria


@dataclass(frozen=True)
class ValidationData:
    """What a verifier knows besides the signature: intermediates, CRLs and OCSP responses (DER)."""

    intermediates: Sequence[x509.Certificate] = ()
    crls: Sequence[bytes] = ()
    ocsps: Sequence[bytes] = ()


@dataclass(frozen=True)
class ChainCheck:
    status: SignatureStatus
    reason: str
    chain: list[str] = field(default_factory=list)  # subjects, signing certificate first


def subject_of(cert: x509.Certificate) -> str:
    return str(cert.subject.human_friendly)


def eik_of(cert: x509.Certificate) -> str | None:
    """The EIK a Bulgarian QES certificate carries as ``organizationIdentifier = NTRBG-<EIK>``.

    None when there is none, or when its check digits are wrong: a malformed EIK identifies nobody, and
    whoever compares it with a sender's must not match on it.
    """
    value = cert.subject.native.get("organization_identifier")
    if isinstance(value, list):  # a multi-valued attribute: the first NTRBG one counts
        value = next((v for v in value if str(v).startswith(_EIK_PREFIX)), None)
    if isinstance(value, str) and value.startswith(_EIK_PREFIX) and eik_is_valid(value[len(_EIK_PREFIX):]):
        return value[len(_EIK_PREFIX):]
    return None


def check_chain(
    cert: x509.Certificate,
    *,
    trust_roots: Sequence[x509.Certificate],
    others: Iterable[x509.Certificate] = (),
    moment: datetime | None = None,
    data: ValidationData | None = None,
) -> ChainCheck:
    """Validate ``cert`` at ``moment`` (default: now) against ``trust_roots``; never raises for a bad chain."""
    moment = moment or datetime.now(UTC)
    data = data or ValidationData()
    context = ValidationContext(
        trust_roots=list(trust_roots), other_certs=[*others, *data.intermediates], moment=moment,
        allow_fetching=False, crls=list(data.crls), ocsps=list(data.ocsps), revocation_mode="soft-fail",
    )
    validator = CertificateValidator(cert, validation_context=context)
    when = moment.strftime("%Y-%m-%d %H:%M UTC")
    who = subject_of(cert)
    try:
        # The hub's workers are synchronous: each check runs its own short event loop.
        path = asyncio.run(validator.async_validate_usage(set()))
    except PathBuildingError:
        return ChainCheck(SignatureStatus.UNTRUSTED,
                          f"the certificate of {who} does not lead to any configured trust anchor", [who])
    except RevokedError as exc:
        return ChainCheck(SignatureStatus.REVOKED,
                          f"a certificate in the chain of {who} was revoked on "
                          f"{exc.revocation_dt:%Y-%m-%d} ({exc.reason.human_friendly})", _subjects(exc))
    except ExpiredError as exc:
        return ChainCheck(SignatureStatus.EXPIRED,
                          f"a certificate in the chain of {who} expired on {exc.expired_dt:%Y-%m-%d}, "
                          f"before the validation time {when}", _subjects(exc))
    except NotYetValidError as exc:
        return ChainCheck(SignatureStatus.EXPIRED,
                          f"a certificate in the chain of {who} is valid only from {exc.valid_from:%Y-%m-%d}, "
                          f"after the validation time {when}", _subjects(exc))
    except (InvalidCertificateError, PathValidationError, ValidationError) as exc:
        return ChainCheck(SignatureStatus.INDETERMINATE, f"the chain of {who} could not be validated: {exc}", [who])
    # soft-fail: without revocation data a certificate counts as not revoked, and the reason says so.
    unchecked = "" if data.crls or data.ocsps else "; revocation not checked (no CRL or OCSP data given)"
    return ChainCheck(SignatureStatus.VALID, f"signed by {who}, chain trusted at {when}{unchecked}",
                      [subject_of(c) for c in reversed(list(path))])


def _subjects(exc: PathValidationError) -> list[str]:
    path = getattr(exc, "original_path", None)
    return [subject_of(c) for c in reversed(list(path))] if path is not None else []
