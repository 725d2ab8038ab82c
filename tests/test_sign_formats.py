"""`kurier sign` and `kurier verify` in all three formats, checked by the tools integrators use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.cli import app
from signing.pki import PkiFiles

pytest_plugins = ["tests.pki_fixtures"]
runner = CliRunner()

# Cyrillic element names, as AIS documents have them (signxml alone could not copy such a tree)
XML = "<?xml version='1.0' encoding='UTF-8'?><Писмо><Относно>Заявление</Относно></Писмо>".encode()


def _run(pki: PkiFiles, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--pki", str(pki.directory)], terminal_width=300)
    return result.exit_code, result.output


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (.ci/run installs it from Debian's packages)")
    return path


def test_xades_signed_by_kurier_sign_verifies_with_xmlsec1_and_kurier_verify(pki: PkiFiles, tmp_path: Path) -> None:
    source, signed = tmp_path / "писмо.xml", tmp_path / "signed.xml"
    source.write_bytes(XML)
    code, out = _run(pki, "sign", str(source), str(signed), "--format", "xades")
    assert code == 0, out
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.root.read_bytes() + pki.intermediate.read_bytes())
    check = subprocess.run([_tool("xmlsec1"), "--verify", "--trusted-pem", str(pki.root), "--untrusted-pem",
                            str(pki.intermediate), "--id-attr:Id", "SignedProperties", str(signed)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    code, out = _run(pki, "verify", str(signed))
    assert code == 0 and "VALID" in out, out

    # Given the signed XML changed afterwards, kurier verify says so and fails
    signed.write_bytes(signed.read_bytes().replace("Заявление".encode(), "Жалба".encode()))
    code, out = _run(pki, "verify", str(signed))
    assert code == 1 and "INVALID" in out, out


def test_cades_signed_by_kurier_sign_verifies_with_openssl_and_kurier_verify(pki: PkiFiles, tmp_path: Path) -> None:
    data = tmp_path / "opis.docx"
    data.write_bytes(b"PK\x03\x04 not really a docx, any bytes will do " * 100)
    signature = tmp_path / "opis.docx.p7s"
    code, out = _run(pki, "sign", str(data), str(signature), "--format", "cades")
    assert code == 0, out
    check = subprocess.run([_tool("openssl"), "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature),
                            "-content", str(data), "-CAfile", str(pki.root), "-certfile", str(pki.intermediate),
                            "-purpose", "any", "-out", "/dev/null"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    for path in (data, signature):  # either file names the pair
        code, out = _run(pki, "verify", str(path))
        assert code == 0 and "VALID" in out, out

    data.write_bytes(data.read_bytes() + b"!")
    code, out = _run(pki, "verify", str(signature))
    assert code == 1 and "INVALID" in out, out
