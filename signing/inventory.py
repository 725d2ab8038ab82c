"""Every certificate Kurier holds or trusts, with its expiry: what operators must renew, and when.

A signing certificate that expires stops the signing of every document of its routes; a trust anchor or
a peer's certificate that expires makes every signature it vouched for untrusted from that day. Neither
may come as a surprise: the inventory lists them all, and :class:`ExpiryWatch` warns in the log well
before (``warn_days``) and again each day until it is renewed. The hub shows the same list in ``/metrics``
(seconds left per certificate) and its API.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import x509

__all__ = ["CertificateInfo", "ExpiryWatch", "describe", "inventory"]

log = logging.getLogger("kurier.certificates")


@dataclass(frozen=True)
class CertificateInfo:
    holder: str  # what Kurier uses it for: "signer vidin", "trust anchor /etc/kurier/roots.pem", ...
    subject: str
    issuer: str
    serial: str  # hexadecimal, as certificate tools print it
    not_before: datetime
    not_after: datetime
    sha256: str  # the certificate's fingerprint: tells two certificates of one subject apart

    def seconds_left(self, now: datetime | None = None) -> float:
        return (self.not_after - (now or datetime.now(UTC))).total_seconds()

    def state(self, warn: timedelta, now: datetime | None = None) -> str:
        """``expired``, ``expiring`` (within ``warn``), ``not yet valid`` or ``valid``."""
        now = now or datetime.now(UTC)
        if now >= self.not_after:
            return "expired"
        if now < self.not_before:
            return "not yet valid"
        return "expiring" if self.not_after - now <= warn else "valid"


def describe(cert: x509.Certificate, holder: str) -> CertificateInfo:
    validity = cert["tbs_certificate"]["validity"]
    return CertificateInfo(
        holder=holder,
        subject=cert.subject.human_friendly,
        issuer=cert.issuer.human_friendly,
        serial=format(cert.serial_number, "x"),
        not_before=validity["not_before"].native,
        not_after=validity["not_after"].native,
        sha256=hashlib.sha256(cert.dump()).hexdigest(),
    )



class ExpiryWatch:
    """Warns in the log of certificates that expire within ``warn_days``, once a day each, until renewed."""

    def __init__(self, warn_days: float = 30.0) -> None:
        self.warn = timedelta(days=warn_days)
        self._told: dict[str, datetime] = {}  # fingerprint → when last told

    def check(self, certificates: Iterable[CertificateInfo], now: datetime | None = None) -> list[CertificateInfo]:
        """Log what is expired or expiring (at most daily per certificate); return all of those."""
        now = now or datetime.now(UTC)
        due: list[CertificateInfo] = []
        for info in certificates:
            state = info.state(self.warn, now)
            if state not in ("expired", "expiring"):
                continue
            due.append(info)
            last = self._told.get(info.sha256)
            if last is not None and now - last < timedelta(days=1):
                continue
            self._told[info.sha256] = now
            if state == "expired":
                log.error("certificate of %s (%s, serial %s) EXPIRED on %s: renew it; until then what it signs or "
                          "vouches for fails", info.holder, info.subject, info.serial, f"{info.not_after:%Y-%m-%d}")
            else:
                days = info.seconds_left(now) / 86400
                log.warning("certificate of %s (%s, serial %s) expires on %s, in %.0f day(s): renew it before then",
                            info.holder, info.subject, info.serial, f"{info.not_after:%Y-%m-%d}", days)
        return due


def inventory(holders: Sequence[tuple[str, x509.Certificate]]) -> list[CertificateInfo]:
    """One entry per (holder, certificate), soonest to expire first."""
    return sorted((describe(cert, holder) for holder, cert in holders), key=lambda i: i.not_after)
