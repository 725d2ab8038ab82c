"""The ``kurier`` command as operators use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adapters.filedrop.testing import SampleDocument, write_document
from router.cli import app
from signing.certs import read_certificates
from tests.helpers import wait_until

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_demo_delivers_every_valid_document_and_refuses_every_bad_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--dir", str(tmp_path / "demo"), "--count", "6"])
    assert result.exit_code == 0, result.output
    assert "12 of 12 valid documents delivered, 9 of 9 bad ones refused" in " ".join(result.output.split())
    # every refused file sits in failed/ with an error file that says why, in Bulgarian and English
    errors = list((tmp_path / "demo" / "inbox").glob("*/failed/*/*.error.txt"))
    assert len(errors) == 9  # the hub's own checks (invalid EIK, unknown recipient) answer at intake too
    assert all("Документът е отказан / Document refused" in e.read_text(encoding="utf-8-sig") for e in errors)
    # the journal the demo leaves behind can be searched with the same command operators use
    listed = runner.invoke(app, ["messages", "list", "-c", str(tmp_path / "demo" / "kurier.yaml"),
                                 "--status", "refused"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "hostile" in listed.output.lower() or "doctype" in listed.output.lower()
    # what each administration sent arrived signed with its own certificate from the demo's test PKI
    from signing.pades_verify import validate_pdf
    from signing.pki import load_pki
    from signing.pkiserver import PkiServer

    pki = load_pki(tmp_path / "demo" / "pki")
    delivered = sorted((tmp_path / "demo" / "outbox" / "region").glob("*.pdf"))
    assert delivered
    with PkiServer(pki):
        [report] = validate_pdf(delivered[0], read_certificates(pki.root))
    assert report.ok and report.signer_eik == "000695616" and report.level == "B-T"


def _config(tmp_path: Path, **extra: object) -> Path:
    settings = {"data_dir": "data", "api": {"enabled": False},
                "connections": {"region": {"adapter": "filedrop", "outbox": "outbox"}},
                "routes": [{"name": "region", "match": {"recipient_eik": ["176035485"]}, "deliver_to": ["region"]}]}
    settings.update(extra)
    path = tmp_path / "kurier.yaml"
    path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return path


def test_check_config_names_the_file_the_rule_and_the_problem(tmp_path: Path) -> None:
    good = _config(tmp_path)
    ok = runner.invoke(app, ["check-config", "-c", str(good)])
    assert ok.exit_code == 0 and "configuration OK" in ok.output
    bad = _config(tmp_path, routes=[{"name": "broken", "match": {"recipient_eik": ["176035485"]},
                                     "deliver_to": ["nowhere"]}])
    result = runner.invoke(app, ["check-config", "-c", str(bad)])
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert str(bad) in flat.replace("\n", "") or "kurier.yaml" in flat
    assert "'broken'" in flat and "'nowhere'" in flat


def test_check_config_only_reads(tmp_path: Path) -> None:
    # Given a configuration for a machine it will be deployed on (folders and database not there yet)
    config = _config(tmp_path, connections={
        "ais": {"adapter": "filedrop", "inbox": "in/ais", "outbox": "out/ais", "encoding": "windows-1251"}},
        routes=[{"name": "all", "deliver_to": ["ais"]}])
    # When it is checked, Then it is OK, says what each connection does, and creates nothing
    result = runner.invoke(app, ["check-config", "-c", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "connection ais" in result.output and "destination + source" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kurier.yaml"]


def test_check_config_refuses_a_route_to_a_connection_that_cannot_deliver(tmp_path: Path) -> None:
    config = _config(tmp_path, connections={"ais": {"adapter": "filedrop", "inbox": "in"}},
                     routes=[{"name": "back", "deliver_to": ["ais"]}])
    result = runner.invoke(app, ["check-config", "-c", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    flat = " ".join(result.output.split())
    assert "routes[0] 'back'" in flat and "cannot deliver" in flat and "outbox" in flat


def test_check_config_says_what_signs_each_route_and_checks_the_trust_anchors(tmp_path: Path) -> None:
    signing = {"signers": {"vidin": {"kind": "qes", "level": "B-T", "tsa_url": "http://127.0.0.1:9/tsa",
                                     "key": {"type": "pkcs12", "path": "keys/vidin.p12", "password_env": "P"}}},
               "routes": {"region": "vidin"},
               "verify": {"trust": ["roots.pem"], "default": "refuse"}}
    config = _config(tmp_path, signing=signing)
    # Given the trust anchors are not there, the check says which file and why
    missing = runner.invoke(app, ["check-config", "-c", str(config)], env={"COLUMNS": "200"})
    assert missing.exit_code == 2 and "roots.pem" in missing.output
    assert "signing.verify.trust: cannot read certificates" in missing.output
    # When they are, it says what signs each route and how incoming signatures are checked
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root")])
    now = datetime.now(UTC)
    root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256()))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "roots.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    result = runner.invoke(app, ["check-config", "-c", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "signed by vidin (qes, key pkcs12, PAdES B-T); incoming signatures: refuse" in flat


def test_db_upgrade_then_messages_show_an_unknown_id(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert runner.invoke(app, ["db", "upgrade", "-c", str(config)]).exit_code == 0
    missing = runner.invoke(app, ["messages", "show", "nope", "-c", str(config)])
    assert missing.exit_code == 1 and "no message" in missing.output


def test_bench_prints_the_ratio_to_the_bare_hop(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "-n", "300", "-c", str(_config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "ratio: Kurier / bare hop =" in result.output


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_run_without_configuration_sets_up_embedded_defaults_and_serves_the_ops_api(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "KURIER_API__PORT": str(port), "PYTHONUNBUFFERED": "1"}
    env.pop("KURIER_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "router.cli", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    data = tmp_path / "kurier-data"
    try:
        wait_until(lambda: (data / "api-token").exists() and (data / "inbox" / "municipality").is_dir(), 60,
                   "kurier-data to be created")
        doc = write_document(data / "inbox" / "municipality", SampleDocument(attachments={}))
        wait_until(lambda: any((data / "outbox" / "region").glob("*.xml")), 60, "the document in the outbox")
        token = (data / "api-token").read_text().strip()

        def get(path: str, auth: bool = True) -> tuple[int, str]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Authorization": f"Bearer {token}"} if auth else {})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()

        wait_until(lambda: get("/ready", auth=False)[0] == 200, 30, "ready")
        assert get("/api/v1/messages", auth=False)[0] == 401
        status, body = get(f"/api/v1/messages?guid={doc.document_guid}")
        assert status == 200 and json.loads(body)[0]["status"] == "delivered"
        metrics = get("/metrics")[1]
        assert "kurier_deliveries_total" in metrics and 'kurier_queue_depth{queue="kurier.inbound"}' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "drop documents into" in output and str(data / "inbox" / "municipality") in output
    assert token not in output  # the secret is in the file, never in the log


def test_run_refuses_to_start_on_a_broken_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "kurier.yaml"
    bad.write_text("routes: [{name: x, deliver_to: [ghost]}]\n", encoding="utf-8")
    started = time.monotonic()
    result = runner.invoke(app, ["run", "-c", str(bad)])
    assert result.exit_code == 2 and "ghost" in result.output
    assert time.monotonic() - started < 10
