"""The hub's certificate inventory: signers' and trust anchors' certificates, watched for expiry.

Read at start and then hourly by the sweeper's process: each configured signer's certificate and chain
(through its key source: a PKCS#12 file, the HSM, the remote service) and each trust anchor. What expires
within ``warn_days`` is warned of in the log daily (:class:`signing.inventory.ExpiryWatch`); every
certificate's seconds left are in ``/metrics`` (``kurier_certificate_expiry_seconds``) and the list in
``GET /api/v1/certificates``. A signer that cannot be asked (its HSM is down) is logged and retried at the
next round; it does not stop the hub.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from router.config import KurierConfig
from router.pipeline import signer_table
from schemas.errors import ConfigError
from signing.certs import read_certificates
from signing.inventory import CertificateInfo, ExpiryWatch, inventory

__all__ = ["CertificateWatch", "gather"]

log = logging.getLogger("kurier.certificates")


def gather(config: KurierConfig) -> list[CertificateInfo]:
    """Every certificate the configuration makes Kurier hold or trust, soonest to expire first."""
    holders: list[tuple[str, Any]] = []
    for path in config.signing.verify.trust:
        resolved = config.resolve_path(path)
        try:
            holders += [(f"trust anchor {resolved}", cert) for cert in read_certificates(resolved)]
        except ConfigError as exc:
            log.warning("certificate inventory: cannot read a trust anchor: %s", exc)
    table = signer_table(config.signing)
    for name, plan in table.plans.items():
        if plan.kind != "qes":
            continue
        signer: Any = plan.build()
        try:
            key = signer.key()
            holders.append((f"signer {name}", key.certificate()))
            holders += [(f"signer {name} (chain)", cert) for cert in key.chain()]
        except Exception as exc:  # the HSM or service is down, a wrong PIN: tell, and ask again next round
            log.warning("certificate inventory: cannot read the certificate of signer %s: %s", name, exc)
        finally:
            with contextlib.suppress(Exception):
                signer.close()
    return inventory(holders)


class CertificateWatch(threading.Thread):
    def __init__(self, config: KurierConfig, stop: threading.Event, publish: Any, *, interval: float = 3600.0,
                 warn_days: float = 30.0) -> None:
        super().__init__(name="certificates", daemon=True)
        self.config = config
        self.stop_event = stop
        self.publish = publish  # Metrics.set_certificates
        self.interval = interval
        self.watch = ExpiryWatch(warn_days)

    def check(self) -> list[CertificateInfo]:
        found = gather(self.config)
        self.publish(found)
        self.watch.check(found)
        return found

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.check()
            except Exception:  # a bug here must not take the sweeper's process down
                log.exception("certificate inventory failed; trying again in %.0f s", self.interval)
            self.stop_event.wait(self.interval)
