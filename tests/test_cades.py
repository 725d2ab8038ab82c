"""CAdES-B detached signatures: made through the key source's pyhanko signer, checked by pyhanko and openssl."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import cms

from signing.cades import sign_cades, verify_cades
from signing.certcheck import ValidationData
from signing.report import SignatureStatus
from tests.xmlsig_fixtures import EIK, SignerPki, pki, require_tool

__all__ = ["pki"]  # the session fixture, imported so pytest finds it

DATA = b"%PDF-1.7\n" + "Заповед № ОА-01-7 от 01.12.2026 г.\n".encode() * 2000


def openssl_verify(pki: SignerPki, data: Path, signature: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("openssl"), "cms", "-verify", "-binary", "-content", str(data), "-inform", "DER",
         "-in", str(signature), "-CAfile", str(pki.ca_pem), "-purpose", "any", "-out", "/dev/null"],
        capture_output=True, text=True, timeout=30,
    )


def test_cades_detached_is_valid_and_verified_by_openssl(pki: SignerPki, tmp_path: Path) -> None:
    signature = sign_cades(DATA, pki.signer)

    # Detached CAdES-B: no content inside, signing-certificate-v2 and signing-time signed.
    signed_data = cms.ContentInfo.load(signature)["content"]
    assert signed_data["encap_content_info"]["content"].native is None
    attributes = {a["type"].native for a in signed_data["signer_infos"][0]["signed_attrs"]}
    assert {"signing_certificate_v2", "signing_time", "message_digest"} <= attributes

    report = verify_cades(DATA, signature, [pki.root], file_name="zapoved.pdf")
    assert report.status is SignatureStatus.VALID, report.reason
    assert report.format == "cades" and report.file_name == "zapoved.pdf" and report.level == "B-B"
    assert report.signer_eik == EIK and "Иван Петров" in (report.signer or "")
    assert report.signed_at is not None and abs(report.signed_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert len(report.chain) == 3 and report.weak == []

    (tmp_path / "zapoved.pdf").write_bytes(DATA)
    (tmp_path / "zapoved.pdf.p7s").write_bytes(signature)
    run = openssl_verify(pki, tmp_path / "zapoved.pdf", tmp_path / "zapoved.pdf.p7s")
    assert run.returncode == 0, run.stderr
    assert "Verification successful" in run.stderr

    # openssl agrees when the content was changed.
    (tmp_path / "zapoved.pdf").write_bytes(DATA + b"%")
    assert openssl_verify(pki, tmp_path / "zapoved.pdf", tmp_path / "zapoved.pdf.p7s").returncode != 0


def test_cades_signs_and_verifies_a_file_by_path(pki: SignerPki, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(DATA * 20)  # ~1.4 MB, hashed in chunks
    signature = sign_cades(path, pki.ec_signer)

    assert verify_cades(path, signature, [pki.root]).status is SignatureStatus.VALID
    assert verify_cades(path.read_bytes(), signature, [pki.root]).status is SignatureStatus.VALID
    (tmp_path / "big.bin.p7s").write_bytes(signature)
    run = openssl_verify(pki, path, tmp_path / "big.bin.p7s")
    assert run.returncode == 0, run.stderr


def test_cades_tampered_content_is_invalid(pki: SignerPki) -> None:
    signature = sign_cades(DATA, pki.signer)
    report = verify_cades(DATA.replace(b"01.12", b"02.12"), signature, [pki.root])
    assert report.status is SignatureStatus.INVALID
    assert "changed after signing" in report.reason
    assert report.signer_eik == EIK  # who claims to have signed is still reported


def test_cades_untrusted_root_and_expired_certificate(pki: SignerPki) -> None:
    untrusted = verify_cades(DATA, sign_cades(DATA, pki.untrusted), [pki.root])
    assert untrusted.status is SignatureStatus.UNTRUSTED and "trust anchor" in untrusted.reason
    assert verify_cades(DATA, sign_cades(DATA, pki.untrusted), [pki.other_root]).ok

    expired = verify_cades(DATA, sign_cades(DATA, pki.expired), [pki.root])
    assert expired.status is SignatureStatus.EXPIRED and "expired on" in expired.reason


def test_cades_revoked_certificate(pki: SignerPki) -> None:
    signature = sign_cades(DATA, pki.revoked)
    report = verify_cades(DATA, signature, [pki.root], validation=ValidationData(crls=[pki.crl]))
    assert report.status is SignatureStatus.REVOKED and "revoked on" in report.reason
    assert verify_cades(DATA, sign_cades(DATA, pki.signer), [pki.root], validation=ValidationData(crls=[pki.crl])).ok


def openssl_sign(pki: SignerPki, tmp_path: Path, *options: str) -> bytes:
    (tmp_path / "data").write_bytes(DATA)
    subprocess.run(
        [require_tool("openssl"), "cms", "-sign", "-binary", "-in", str(tmp_path / "data"), "-signer",
         str(pki.signer_pem), "-inkey", str(pki.signer_key_pem), "-certfile", str(pki.intermediate_pem),
         "-outform", "DER", "-out", str(tmp_path / "sig"), *options],
        check=True, capture_output=True, timeout=30,
    )
    return (tmp_path / "sig").read_bytes()


def test_signatures_made_by_openssl_verify_plain_cms_flagged(pki: SignerPki, tmp_path: Path) -> None:
    cades = verify_cades(DATA, openssl_sign(pki, tmp_path, "-cades"), [pki.root])
    assert cades.status is SignatureStatus.VALID and cades.level == "B-B" and cades.weak == []

    plain = verify_cades(DATA, openssl_sign(pki, tmp_path), [pki.root])
    assert plain.status is SignatureStatus.VALID and plain.level is None
    assert any("plain CMS" in w for w in plain.weak)

    md5 = verify_cades(DATA, openssl_sign(pki, tmp_path, "-md", "md5"), [pki.root])
    assert md5.status is SignatureStatus.INVALID and "MD5" in md5.reason


def test_cades_sha1_is_verified_and_flagged_weak(pki: SignerPki) -> None:
    report = verify_cades(DATA, sign_cades(DATA, pki.signer, digest_algorithm="sha1"), [pki.root])
    assert report.status is SignatureStatus.VALID and report.weak == ["SHA-1 digest"]


def test_cades_garbage_signature_is_reported_not_raised(pki: SignerPki) -> None:
    report = verify_cades(DATA, b"\x30\x03\x02\x01\x01", [pki.root])
    assert report.status is SignatureStatus.INVALID and "CMS" in report.reason
    report = verify_cades(DATA, b"not a signature", [pki.root])
    assert report.status is SignatureStatus.INVALID
