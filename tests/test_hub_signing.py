"""QES in the hub: documents signed as they pass, and the signatures of what comes in checked by route policy.

Real signatures from the test PKI (certomancer), checked by pyhanko, the same validators `kurier verify`
uses; nothing is mocked. The stage's mechanics on both transports are proven in test_signing_config.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.memory import sink
from router.hub import Hub
from schemas.envelope import AttachmentRef, Envelope
from signing.pades import PadesSettings, PadesSigner
from signing.pades_verify import validate_pdf
from signing.pki import PkiFiles, build_pki
from signing.report import SignatureStatus
from signing.samplepdf import write_sample_pdf
from tests.helpers import REGION, envelope, hub_config, unique, wait_until

pytest_plugins = ["tests.pki_fixtures"]

EMBEDDED = {"broker_url": "memory://"}


@pytest.fixture
def start_hub(tmp_path: Path) -> Iterator[Any]:
    hubs: list[Hub] = []

    def start(signing: dict[str, Any]) -> tuple[Hub, str]:
        name = unique("region")
        config = hub_config(tmp_path, {**EMBEDDED, "journal_url": f"sqlite:///{tmp_path / 'j.sqlite3'}",
                                       "queue_prefix": unique("q")},
                            connections={name: {"adapter": "memory"}},
                            routes=[{"name": "to-region", "match": {"recipient_eik": [REGION.eik]},
                                     "deliver_to": [name]}],
                            default_route={"deliver_to": [name]}, signing=signing)
        hub = Hub(config, with_sources=False)
        hub.start()
        hubs.append(hub)
        return hub, name

    yield start
    for hub in hubs:
        hub.stop()


def _attach(hub: Hub, name: str, data: bytes, mime: str) -> AttachmentRef:
    stored = hub.store.put_bytes(data)
    return AttachmentRef(file_name=name, mime_type=mime, size=stored.size, sha256=stored.sha256)


def _signer_settings(pki: PkiFiles, label: str = "signer-000695235", **extra: Any) -> dict[str, Any]:
    files = pki.signers[label]
    key: dict[str, Any] = {"type": "pkcs12", "path": str(files.pkcs12)}
    if files.password_file is not None:
        key["password_file"] = str(files.password_file)
    else:
        key["password_env"] = "KURIER_PKI_PASSWORD"
    return {"kind": "qes", "key": key, **extra}


def _delivered(hub: Hub, dest: str, receipt_id: str) -> Envelope:
    wait_until(lambda: hub.journal.statuses([receipt_id]).get(receipt_id) in ("delivered", "failed"),
               timeout=30, what="the document handled")
    assert hub.journal.statuses([receipt_id])[receipt_id] == "delivered", hub.journal.get(receipt_id)
    return next(env for key, env in sink(dest).delivered.items() if key.startswith(receipt_id))


def test_documents_of_a_signing_route_are_delivered_signed_pades_and_cades(
        start_hub: Any, pki: PkiFiles, pki_server: Any, trust_roots: list, tmp_path: Path) -> None:
    hub, dest = start_hub({"signers": {"qes": _signer_settings(pki, level="B-T", tsa_url=pki.tsa_url,
                                                                reason="Изпратено от Kurier")},
                           "routes": {"to-region": "qes"}})
    pdf = write_sample_pdf(tmp_path / "in.pdf", 20_000, "Заповед")
    doc = envelope(attachments=[_attach(hub, "заповед.pdf", pdf.read_bytes(), "application/pdf"),
                                _attach(hub, "опис.txt", "опис на преписката".encode(), "text/plain")])
    receipt = hub.submit(doc)
    got = _delivered(hub, dest, receipt.envelope_id)

    names = [a.file_name for a in got.attachments]
    assert names == ["заповед.pdf", "опис.txt", "опис.txt.p7s"]
    signed_pdf = tmp_path / "out.pdf"
    hub.store.copy_to(got.attachments[0].sha256, signed_pdf)
    [report] = validate_pdf(signed_pdf, trust_roots)
    assert report.status is SignatureStatus.VALID and report.signer_eik == "000695235"
    assert report.timestamp is not None  # B-T: the test PKI's TSA stamped it

    from signing.cades import verify_cades
    cades = verify_cades(hub.store.read_bytes(got.attachments[1].sha256),
                         hub.store.read_bytes(got.attachments[2].sha256), trust_roots)
    assert cades.status is SignatureStatus.VALID
    detail = hub.journal.get(receipt.envelope_id)
    assert detail is not None
    sign = [e for e in detail.events if e.stage == "sign"]
    assert sign and sign[0].outcome == "ok" and "PAdES B-T" in (sign[0].detail or "")
    assert "CAdES-B detached" in (sign[0].detail or "")


def _signed_pdf(pki: PkiFiles, label: str, path: Path) -> bytes:
    source = write_sample_pdf(path.with_suffix(".src.pdf"), 20_000, "Kurier test decision")
    signer = PadesSigner(pki.signers[label].key(), PadesSettings(level="B-B"))
    signer.sign_file(source, path)
    return path.read_bytes()


def _tampered(data: bytes) -> bytes:
    assert data.count(b"Kurier test decision") == 1  # the page's text, inside what the signature covers
    return data.replace(b"Kurier test decision", b"Kurier TEST decision")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    """A second PKI whose root nobody trusts."""
    return build_pki(tmp_path_factory.mktemp("other-pki"), ["000695235"])


@pytest.mark.parametrize(("case", "expected"), [
    ("valid", "delivered"),
    ("tampered", "invalid"),
    ("expired", "expired"),
    ("revoked", "revoked"),
    ("untrusted", "untrusted"),
])
def test_incoming_signatures_are_checked_and_a_bad_one_refused_with_its_reason(
        start_hub: Any, pki: PkiFiles, pki_server: Any, other_pki: PkiFiles, tmp_path: Path,
        case: str, expected: str) -> None:
    hub, dest = start_hub({"verify": {"trust": [str(pki.root)], "routes": {"to-region": "refuse"}}})
    labels = {"expired": "signer-expired", "revoked": "signer-revoked"}
    issuer = other_pki if case == "untrusted" else pki
    data = _signed_pdf(issuer, labels.get(case, "signer-000695235"), tmp_path / "signed.pdf")
    if case == "tampered":
        data = _tampered(data)
    receipt = hub.submit(envelope(attachments=[_attach(hub, "решение.pdf", data, "application/pdf")]))
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) in ("delivered", "failed"),
               timeout=30, what="the document handled")
    detail = hub.journal.get(receipt.envelope_id)
    assert detail is not None
    checked = [e for e in detail.events if e.stage == "verify"]
    assert checked, detail.events
    if expected == "delivered":
        assert detail.summary.status == "delivered"
        assert checked[0].outcome == "valid" and "EIK 000695235" in (checked[0].detail or "")
        return
    # Refused with the reason, journaled, the document kept for an operator (nothing delivered)
    assert detail.summary.status == "failed" and (detail.summary.error or "").startswith("signature check: ")
    assert checked[0].outcome == expected, checked
    assert "решение.pdf" in (detail.summary.error or "") and expected in (detail.summary.error or "")
    assert not [k for k in sink(dest).delivered if k.startswith(receipt.envelope_id)]


def test_a_flagging_route_delivers_a_badly_signed_document_marked(
        start_hub: Any, pki: PkiFiles, pki_server: Any, tmp_path: Path) -> None:
    hub, dest = start_hub({"verify": {"trust": [str(pki.root)], "default": "flag"}})
    unsigned = write_sample_pdf(tmp_path / "plain.pdf", 10_000, "Писмо").read_bytes()
    receipt = hub.submit(envelope(attachments=[_attach(hub, "писмо.pdf", unsigned, "application/pdf")]))
    got = _delivered(hub, dest, receipt.envelope_id)
    assert "signature invalid" in (got.attachments[0].comment or "")
    detail = hub.journal.get(receipt.envelope_id)
    assert detail is not None
    assert [e.outcome for e in detail.events if e.stage == "verify"] == ["invalid"]


def test_checking_without_trust_anchors_is_a_configuration_error(tmp_path: Path) -> None:
    from schemas.errors import ConfigError

    with pytest.raises(ConfigError, match=r"verify\.trust"):
        hub_config(tmp_path, {"broker_url": "memory://"}, signing={"verify": {"default": "refuse"}})


def test_the_certificate_inventory_lists_signers_and_anchors_in_the_api_and_metrics(
        start_hub: Any, pki: PkiFiles, caplog: pytest.LogCaptureFixture) -> None:
    from fastapi.testclient import TestClient

    from router.api import create_app
    from router.certificates import CertificateWatch

    hub, _ = start_hub({"signers": {"qes": _signer_settings(pki), "old": _signer_settings(pki, "signer-expired")},
                        "routes": {"to-region": "qes"}, "verify": {"trust": [str(pki.root)]}})
    with caplog.at_level("WARNING", logger="kurier.certificates"):
        CertificateWatch(hub.config, hub._stop, hub.metrics.set_certificates).check()
    client = TestClient(create_app(hub.journal, hub.metrics, "t", hub.ready))
    listed = client.get("/api/v1/certificates", headers={"Authorization": "Bearer t"}).json()
    by_holder = {c["holder"]: c for c in listed}
    assert {"signer qes", "signer old", f"trust anchor {pki.root}"} <= set(by_holder)
    assert "NTRBG-000695235" in by_holder["signer qes"]["subject"] and by_holder["signer qes"]["state"] == "valid"
    assert by_holder["signer old"]["state"] == "expired" and by_holder["signer old"]["days_left"] < 0
    assert listed[0]["holder"] == "signer old"  # soonest to expire first
    # the expired one is told in the log as what to do
    assert any("signer old" in r.getMessage() and "EXPIRED" in r.getMessage() for r in caplog.records)
    metrics = client.get("/metrics", headers={"Authorization": "Bearer t"}).text
    assert 'kurier_certificate_expiry_seconds{holder="signer qes"' in metrics
