"""The test PKI: certificates a real tool (openssl) accepts, EIKs where Bulgarian QES carry them, live services."""

from __future__ import annotations

import hashlib
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.x509 import load_der_x509_certificate
from typer.testing import CliRunner

from router.cli import app
from schemas.errors import ConfigError
from signing.certs import read_certificates
from signing.pades_verify import subject_eik
from signing.pkcs12 import Pkcs12Key, Settings
from signing.pki import PASSWORD_ENV, PkiFiles, build_pki, load_pki
from signing.pkiserver import PkiServer

pytest_plugins = ["tests.pki_fixtures"]
runner = CliRunner()


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def test_each_administration_has_a_signer_whose_subject_carries_its_eik(pki: PkiFiles) -> None:
    valid = {s.eik: s for s in pki.valid_signers()}
    assert sorted(valid) == ["000695235", "121759222"]
    for eik, files in valid.items():
        cert = read_certificates(files.cert)[0]
        assert cert.subject.native["organization_identifier"] == f"NTRBG-{eik}"
        assert subject_eik(cert) == eik
        # openssl reads OID 2.5.4.97 as organizationIdentifier: the attribute real QES certificates use
        subject = _openssl("x509", "-in", str(files.cert), "-noout", "-subject").stdout
        assert f"organizationIdentifier = NTRBG-{eik}" in subject
    assert {s.status for s in pki.signers.values()} == {"valid", "expired", "revoked"}


def test_openssl_verifies_the_chains_and_rejects_the_expired_signer(pki: PkiFiles) -> None:
    good = pki.signers["signer-000695235"]
    ok = _openssl("verify", "-CAfile", str(pki.root), "-untrusted", str(pki.intermediate), str(good.cert))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for cert in (pki.tsa, pki.ocsp):
        assert _openssl("verify", "-CAfile", str(pki.root), "-untrusted", str(pki.intermediate),
                        str(cert)).returncode == 0
    expired = _openssl("verify", "-CAfile", str(pki.root), "-untrusted", str(pki.intermediate),
                       str(pki.signers["signer-expired"].cert))
    assert expired.returncode != 0 and "certificate has expired" in expired.stdout + expired.stderr


def test_the_crl_lists_the_revoked_signer_only(pki: PkiFiles) -> None:
    crl = _openssl("crl", "-inform", "DER", "-in", str(pki.crls["interm"]), "-noout", "-text").stdout
    revoked = read_certificates(pki.signers["signer-revoked"].cert)[0].serial_number
    good = read_certificates(pki.signers["signer-000695235"].cert)[0].serial_number
    assert f"Serial Number: {revoked:X}" in crl and "Key Compromise" in crl
    assert f"Serial Number: {good:X}" not in crl


def test_the_ocsp_responder_says_good_and_revoked(pki: PkiFiles, pki_server: PkiServer) -> None:
    url = f"{pki_server.url}/kurier-test/ocsp/interm"
    for label, expected in (("signer-000695235", ": good"), ("signer-revoked", ": revoked")):
        out = _openssl("ocsp", "-issuer", str(pki.intermediate), "-cert", str(pki.signers[label].cert),
                       "-url", url, "-CAfile", str(pki.root), "-verify_other", str(pki.intermediate))
        assert expected in out.stdout, out.stdout + out.stderr
        assert "Response verify OK" in out.stderr


def test_pkcs12_files_are_private_and_open_with_their_password(pki: PkiFiles) -> None:
    files = pki.signers["signer-121759222"]
    assert files.password_file is not None
    for path in (files.pkcs12, files.password_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = Pkcs12Key("k", Settings(path=files.pkcs12, password_file=files.password_file))
    assert subject_eik(key.certificate()) == "121759222"
    assert [c.subject.native["common_name"] for c in key.chain()] == ["Kurier Test Qualified CA"]


def test_a_wrong_password_is_a_config_error_that_shows_no_secret(pki: PkiFiles, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRONG_P12_PASSWORD", "hunter2-not-it")
    with pytest.raises(ConfigError) as caught:
        Pkcs12Key("k", Settings(path=pki.signers["signer-000695235"].pkcs12, password_env="WRONG_P12_PASSWORD"))
    assert "wrong password" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError, match="not set"):
        Pkcs12Key("k", Settings(path=pki.signers["signer-000695235"].pkcs12, password_env="NO_SUCH_VARIABLE_X"))


def test_raw_signatures_and_batched_hashes_verify_with_the_certificate_key(pki: PkiFiles) -> None:
    files = pki.signers["signer-000695235"]
    key = Pkcs12Key("k", Settings(path=files.pkcs12, password_file=files.password_file))
    public = load_der_x509_certificate(key.certificate().dump()).public_key()
    data = b"<SEOS message/>"
    public.verify(key.sign_raw(data), data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr,call-arg]
    digests = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    for digest, signature in zip(digests, key.sign_hashes(digests), strict=True):
        public.verify(signature, digest, padding.PKCS1v15(),  # type: ignore[union-attr,call-arg]
                      utils.Prehashed(hashes.SHA256()))


def test_a_password_from_the_environment_writes_no_password_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "shared-test-password")
    built = build_pki(tmp_path / "pki", ["831903286"])
    files = built.signers["signer-831903286"]
    assert files.password_file is None and not list((tmp_path / "pki" / "signers").glob("*.password"))
    assert files.password() == b"shared-test-password"
    assert subject_eik(files.key().certificate()) == "831903286"
    assert load_pki(tmp_path / "pki").signers.keys() == built.signers.keys()


def test_pki_init_prints_each_file_and_takes_the_eiks_of_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "kurier.yaml"
    config.write_text("data_dir: data\nconnections:\n  region: {adapter: filedrop, outbox: out}\n"
                      "routes:\n  - {name: r, match: {recipient_eik: ['175319034']}, deliver_to: [region]}\n",
                      encoding="utf-8")
    result = runner.invoke(app, ["pki", "init", "-c", str(config)], terminal_width=400)
    assert result.exit_code == 0, result.output
    pki = load_pki(tmp_path / "data" / "pki")
    assert [s.eik for s in pki.valid_signers()] == ["175319034"]
    for path in (pki.root, pki.signers["signer-175319034"].pkcs12, pki.crls["interm"]):
        assert str(path) in result.output and path.is_file()


def test_a_wrong_eik_is_refused_before_any_key_is_made(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="check digit"):
        build_pki(tmp_path / "pki", ["831903281"])
    assert not (tmp_path / "pki").exists()


def test_load_pki_names_the_command_that_makes_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kurier pki init"):
        load_pki(tmp_path)
