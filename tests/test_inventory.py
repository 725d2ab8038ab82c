"""The certificate inventory: every certificate with its expiry, and warnings well before it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from schemas.errors import ConfigError
from signing.certs import read_certificates
from signing.inventory import ExpiryWatch, describe, inventory

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _cert(common_name: str, not_after: datetime) -> asn1_x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, "NTRBG-000695235")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(0x1234ABCD).not_valid_before(not_after - timedelta(days=365)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def test_the_inventory_lists_each_certificate_soonest_to_expire_first() -> None:
    later, sooner = _cert("Община Видин", NOW + timedelta(days=300)), _cert("Печат", NOW + timedelta(days=10))
    listed = inventory([("signer vidin", later), ("trust anchor roots.pem", sooner)])
    assert [i.holder for i in listed] == ["trust anchor roots.pem", "signer vidin"]
    assert "Община Видин" in listed[1].subject and listed[1].serial == "1234abcd"
    month = timedelta(days=30)
    assert listed[0].state(month, NOW) == "expiring" and listed[1].state(month, NOW) == "valid"


def test_expiring_and_expired_certificates_are_warned_of_once_a_day(caplog: pytest.LogCaptureFixture) -> None:
    watch = ExpiryWatch(warn_days=30)
    certs = [describe(_cert("Скоро", NOW + timedelta(days=5)), "signer vidin"),
             describe(_cert("Изтекъл", NOW - timedelta(days=1)), "trust anchor old.pem"),
             describe(_cert("Дълъг", NOW + timedelta(days=400)), "signer region")]
    with caplog.at_level(logging.WARNING, logger="kurier.certificates"):
        due = watch.check(certs, NOW)
        watch.check(certs, NOW + timedelta(hours=1))  # told already today
    assert [i.holder for i in due] == ["signer vidin", "trust anchor old.pem"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "signer vidin" in messages[0] and "in 5 day(s)" in messages[0] and "renew" in messages[0]
    assert "EXPIRED" in messages[1] and caplog.records[1].levelno == logging.ERROR
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kurier.certificates"):
        watch.check(certs, NOW + timedelta(days=1, minutes=1))
    assert len(caplog.records) == 2  # a day later: told again


def test_certificates_load_from_a_pem_bundle_and_a_file_without_one_is_named(tmp_path: Path) -> None:
    a, b = _cert("A", NOW + timedelta(days=9)), _cert("B", NOW + timedelta(days=9))
    from asn1crypto import pem

    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(pem.armor("CERTIFICATE", a.dump()) + pem.armor("CERTIFICATE", b.dump()))
    assert [c.subject.human_friendly for c in read_certificates(bundle)] == [a.subject.human_friendly,
                                                                            b.subject.human_friendly]
    empty = tmp_path / "empty.pem"
    empty.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match=r"empty\.pem: no certificate in it"):
        read_certificates(empty)
