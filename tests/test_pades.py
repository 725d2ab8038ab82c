"""PAdES through ``kurier sign`` / ``kurier verify``: real signatures that pyhanko and poppler's pdfsig accept,
and each kind of bad signature (tampered, expired, revoked, untrusted) caught with its reason."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from router.cli import app
from schemas.errors import ConfigError, Permanent, Transient
from signing.pades import PadesSettings, PadesSigner
from signing.pades_verify import validate_pdf
from signing.pki import PkiFiles, free_port
from signing.pkiserver import PkiServer
from signing.report import SignatureStatus
from signing.samplepdf import write_sample_pdf

pytest_plugins = ["tests.pki_fixtures"]
runner = CliRunner()


def write_pdf(path: Path) -> Path:
    return write_sample_pdf(path, 20_000, "Kurier test document")


def _sign(pki: PkiFiles, source: Path, output: Path, *extra: str) -> None:
    result = runner.invoke(app, ["sign", str(source), str(output), "--pki", str(pki.directory), *extra])
    assert result.exit_code == 0, result.output


def _verify(pki: PkiFiles, path: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["verify", str(path), "--pki", str(pki.directory), *extra], terminal_width=300)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def signed_bt(pki: PkiFiles, pki_server: PkiServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bt")
    _sign(pki, write_pdf(folder / "in.pdf"), folder / "signed.pdf", "--level", "B-T", "--reason", "Изходящ документ")
    return folder / "signed.pdf"


def test_a_b_t_signature_by_kurier_sign_validates_with_pyhanko(signed_bt: Path, trust_roots: list) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    with signed_bt.open("rb") as fh:
        (sig,) = PdfFileReader(fh).embedded_signatures
        context = ValidationContext(trust_roots=trust_roots)
        status = validate_pdf_signature(sig, signer_validation_context=context, ts_validation_context=context)
    assert status.bottom_line, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES, not the legacy adbe.pkcs7
    assert sig.sig_object["/Reason"] == "Изходящ документ"


def _nss_db(folder: Path, root: Path | None) -> Path:
    folder.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{folder}", "--empty-password"], check=True)
    if root is not None:
        subprocess.run(["certutil", "-A", "-d", f"sql:{folder}", "-n", "kurier-test-root", "-t", "C,C,C",
                        "-i", str(root)], check=True)
    return folder


def test_pdfsig_shows_a_valid_signature_from_the_test_pki(signed_bt: Path, pki: PkiFiles, tmp_path: Path) -> None:
    for tool in ("pdfsig", "certutil"):
        assert shutil.which(tool), f"{tool} missing: .ci/run installs poppler-utils and libnss3-tools"

    def pdfsig(nss: Path) -> str:
        return subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(signed_bt)], capture_output=True, text=True,
                              check=True).stdout

    trusting = pdfsig(_nss_db(tmp_path / "with-root", pki.root))
    assert "Signature Validation: Signature is Valid." in trusting
    assert "Signer Certificate Common Name: Signer 000695235" in trusting
    assert "NTRBG-000695235" in trusting and "Total document signed" in trusting
    # The chain is poppler's to judge: without the test root it names the issuer unknown; with it, not.
    # (poppler 22.12 then reports "Unknown issue" even for a trusted chain: it reads a stale NSS error
    # code instead of CERT_PKIXVerifyCert's result, fixed in later poppler; newer ones say "Trusted".)
    assert "Certificate issuer is unknown" in pdfsig(_nss_db(tmp_path / "empty", None))
    assert "Certificate issuer is unknown" not in trusting
    assert "Revoked" not in trusting and "Expired" not in trusting


def openssl_cms_verify(pdf: Path, anchor: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """``openssl cms -verify`` of the PDF's (only) signature: its CMS over the bytes its /ByteRange covers."""
    from asn1crypto import cms
    from pyhanko.pdf_utils.reader import PdfFileReader

    data = pdf.read_bytes()
    with pdf.open("rb") as fh:
        (sig,) = PdfFileReader(fh).embedded_signatures
        start1, len1, start2, len2 = sig.sig_object["/ByteRange"]
        contents = bytes(sig.sig_object["/Contents"])  # the DER, then the reserved room's zero padding
    (folder / "sig.der").write_bytes(cms.ContentInfo.load(contents).dump())
    (folder / "signed.bin").write_bytes(data[start1:start1 + len1] + data[start2:start2 + len2])
    return subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(folder / "sig.der"),
                           "-content", str(folder / "signed.bin"), "-CAfile", str(anchor), "-purpose", "any",
                           "-out", "/dev/null"], capture_output=True, text=True, check=False)


def test_openssl_verifies_the_cms_and_its_chain_to_the_test_root(signed_bt: Path, pki: PkiFiles,
                                                                 tmp_path: Path) -> None:
    ok = openssl_cms_verify(signed_bt, pki.root, tmp_path)
    assert ok.returncode == 0 and "Verification successful" in ok.stderr, ok.stderr
    other = openssl_cms_verify(signed_bt, pki.tsa, tmp_path)  # a certificate that is no anchor of the chain
    assert other.returncode != 0 and "unable to get local issuer certificate" in other.stderr


def test_kurier_verify_reports_a_valid_b_t_signature(signed_bt: Path, pki: PkiFiles) -> None:
    code, output = _verify(pki, signed_bt, "--json")
    assert code == 0, output
    (report,) = json.loads(output)
    assert report["status"] == "valid" and report["level"] == "B-T" and report["signer_eik"] == "000695235"
    assert report["timestamp"] and report["chain"][-1].endswith("Common Name: Kurier Test Root CA, Organization: "
                                                                "Kurier Test PKI, Country: BG")


def test_b_lt_embeds_what_validation_needs_so_it_validates_offline(pki: PkiFiles, pki_server: PkiServer,
                                                                    trust_roots: list, tmp_path: Path) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    _sign(pki, write_pdf(tmp_path / "in.pdf"), tmp_path / "lt.pdf", "--level", "B-LT")
    with (tmp_path / "lt.pdf").open("rb") as fh:
        dss = PdfFileReader(fh).root["/DSS"]
        assert len(dss["/OCSPs"]) + len(dss.get("/CRLs", [])) >= 1
    (report,) = validate_pdf(tmp_path / "lt.pdf", trust_roots, allow_fetching=False)
    assert report.status is SignatureStatus.VALID and report.level == "B-LT"


def _tamper(path: Path) -> None:
    data = path.read_bytes()
    assert data.count(b"Kurier test document") == 1
    path.write_bytes(data.replace(b"Kurier test document", b"Kurier TEST document"))


@pytest.mark.parametrize(("signer", "damage", "status", "words"), [
    ("signer-000695235", _tamper, "INVALID", "changed after signing"),
    ("signer-expired", None, "EXPIRED", "expired"),
    ("signer-revoked", None, "REVOKED", "revoked"),
])
def test_kurier_verify_catches_each_bad_signature_with_its_reason(
        pki: PkiFiles, pki_server: PkiServer, tmp_path: Path, signer: str,
        damage: Callable[[Path], None] | None, status: str, words: str) -> None:
    _sign(pki, write_pdf(tmp_path / "in.pdf"), tmp_path / "signed.pdf", "--signer", signer)
    if damage:
        damage(tmp_path / "signed.pdf")
    code, output = _verify(pki, tmp_path / "signed.pdf")
    assert code == 1, output
    assert status in output and words in output


def _other_root(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = pyca_x509.Name([pyca_x509.NameAttribute(NameOID.COMMON_NAME, "Some Other Root")])
    now = datetime.now(UTC)
    cert = (pyca_x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(pyca_x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_signature_from_an_untrusted_root_is_reported_untrusted(signed_bt: Path, pki: PkiFiles,
                                                                 tmp_path: Path) -> None:
    code, output = _verify(pki, signed_bt, "--trust", str(_other_root(tmp_path / "other.pem")))
    assert code == 1
    assert "UNTRUSTED" in output and "no chain from the signing certificate to a trusted root" in output


def test_an_unsigned_pdf_does_not_pass(pki: PkiFiles, pki_server: PkiServer, tmp_path: Path) -> None:
    code, output = _verify(pki, write_pdf(tmp_path / "plain.pdf"))
    assert code == 1 and "carries no signature" in output


def test_a_pdf_signed_twice_keeps_both_signatures_valid(pki: PkiFiles, pki_key: Callable, trust_roots: list,
                                                        tmp_path: Path) -> None:
    first = PadesSigner(pki_key("signer-000695235"), PadesSettings(reason="съставил"))
    second = PadesSigner(pki_key("signer-121759222"), PadesSettings(reason="одобрил", location="София"))
    first.sign_file(write_pdf(tmp_path / "in.pdf"), tmp_path / "once.pdf")
    second.sign_file(tmp_path / "once.pdf", tmp_path / "twice.pdf")
    reports = validate_pdf(tmp_path / "twice.pdf", trust_roots)
    assert [(r.status, r.signer_eik) for r in reports] == [(SignatureStatus.VALID, "000695235"),
                                                           (SignatureStatus.VALID, "121759222")]


def test_signing_a_non_pdf_fails_for_good_and_leaves_no_output(pki_key: Callable, tmp_path: Path) -> None:
    (tmp_path / "not.pdf").write_bytes(b"<xml/>")
    with pytest.raises(Permanent, match="PAdES signing failed"):
        PadesSigner(pki_key("signer-000695235")).sign_file(tmp_path / "not.pdf", tmp_path / "out.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not.pdf"]


def test_a_timestamp_authority_that_does_not_answer_is_transient(pki_key: Callable, tmp_path: Path) -> None:
    signer = PadesSigner(pki_key("signer-000695235"),
                         PadesSettings(level="B-T", tsa_url=f"http://127.0.0.1:{free_port()}/tsa"))
    with pytest.raises(Transient, match="did not answer"):
        signer.sign_file(write_pdf(tmp_path / "in.pdf"), tmp_path / "out.pdf")
    assert not (tmp_path / "out.pdf").exists()


def test_levels_above_b_b_need_a_tsa_and_b_lt_trust_anchors(pki_key: Callable) -> None:
    with pytest.raises(ConfigError, match="tsa_url"):
        PadesSigner(pki_key("signer-000695235"), PadesSettings(level="B-T"))
    with pytest.raises(ConfigError, match="trust anchors"):
        PadesSigner(pki_key("signer-000695235"), PadesSettings(level="B-LT", tsa_url="http://127.0.0.1:9/"))


def test_one_signer_signs_many_documents_and_each_signature_is_its_own(pki: PkiFiles, pki_key: Callable,
                                                                       trust_roots: list, tmp_path: Path) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    # The first document goes through pyhanko's own CMS path; the later ones through the prepared one.
    signer = PadesSigner(pki_key("signer-121759222"), PadesSettings(reason="bench"))
    digests = set()
    for i in range(3):
        source = write_sample_pdf(tmp_path / f"in{i}.pdf", 30_000, f"document {i}")
        signer.sign_file(source, tmp_path / f"out{i}.pdf")
        (report,) = validate_pdf(tmp_path / f"out{i}.pdf", trust_roots, allow_fetching=False)
        assert report.status is SignatureStatus.VALID and report.signer_eik == "121759222"
        checked = subprocess.run(["pdfsig", "-nocert", str(tmp_path / f"out{i}.pdf")], capture_output=True,
                                 text=True, check=True).stdout
        assert "Signature Validation: Signature is Valid." in checked
        assert openssl_cms_verify(tmp_path / f"out{i}.pdf", pki.root, tmp_path).returncode == 0
        with (tmp_path / f"out{i}.pdf").open("rb") as fh:
            (sig,) = PdfFileReader(fh).embedded_signatures
            attrs = sig.signer_info["signed_attrs"]
            digests.add(next(a["values"][0].native for a in attrs if a["type"].native == "message_digest"))
    assert len(digests) == 3


def test_kurier_sign_and_verify_start_the_test_pki_services_themselves(tmp_path: Path) -> None:
    from signing.pki import build_pki

    own = build_pki(tmp_path / "pki", ["000695235"])  # nothing serves its TSA, OCSP and CRLs yet
    _sign(own, write_pdf(tmp_path / "in.pdf"), tmp_path / "bt.pdf", "--level", "B-T")
    code, output = _verify(own, tmp_path / "bt.pdf")
    assert code == 0 and "VALID" in output and "level: B-T" in output
    _sign(own, write_pdf(tmp_path / "in.pdf"), tmp_path / "revoked.pdf", "--signer", "signer-revoked")
    code, output = _verify(own, tmp_path / "revoked.pdf")  # its OCSP responder answers during the command
    assert code == 1 and "REVOKED" in output
    with PkiServer(own):  # and each command stopped the services it started: the port is free again
        pass


def test_kurier_sign_warns_when_the_certificate_is_out_of_its_validity(pki: PkiFiles, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sign", str(write_pdf(tmp_path / "in.pdf")), str(tmp_path / "out.pdf"),
                                 "--pki", str(pki.directory), "--signer", "signer-expired"])
    assert result.exit_code == 0 and "verifiers will reject this signature" in result.output


def test_a_busy_key_source_stays_transient_through_the_pades_signer(pki: PkiFiles, tmp_path: Path) -> None:
    from signing.pkcs12 import Pkcs12Key, Settings

    class BusyKey(Pkcs12Key):  # plays an HSM that answers "busy": the hub must retry, not fail the document
        def pdf_signer(self):  # type: ignore[no-untyped-def]
            signer = super().pdf_signer()

            def busy(data: bytes, digest_algorithm: str) -> bytes:
                raise Transient("the HSM is busy", code="hsm-busy")

            signer.sign_raw = busy
            return signer

    files = pki.signers["signer-000695235"]
    key = BusyKey("busy", Settings(path=files.pkcs12, password_file=files.password_file))
    with pytest.raises(Transient, match="HSM is busy"):
        PadesSigner(key).sign_file(write_pdf(tmp_path / "in.pdf"), tmp_path / "out.pdf")


def test_formats_are_dispatched_by_name_and_detected_from_the_content(pki: PkiFiles, tmp_path: Path) -> None:
    from signing.formats import detect_format

    (tmp_path / "doc.xml").write_bytes("\ufeff<?xml version='1.0'?><doc/>".encode())
    (tmp_path / "doc.bin").write_bytes(b"\x00\x01 any other file")
    assert [detect_format(p) for p in (write_pdf(tmp_path / "doc.pdf"), tmp_path / "doc.xml",
                                       tmp_path / "doc.bin")] == ["pades", "xades", "cades"]
    # A format nobody has plugged in yet is a clear refusal, not a crash.
    result = runner.invoke(app, ["sign", str(tmp_path / "doc.pdf"), str(tmp_path / "out"), "--format", "nope",
                                 "--pki", str(pki.directory)])
    assert result.exit_code == 2
    assert "signature format 'nope' is not available (known: cades, pades, xades)" in result.output
    assert not (tmp_path / "out").exists()
