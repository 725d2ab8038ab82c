"""Signers from configuration: which route signs with which signer, and how a signer's failures are handled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.memory import sink
from router.config import load_config
from router.hub import Hub
from router.journal import Journal, PlanOutcome, StageEvent
from router.pipeline import signer_table
from schemas.envelope import EnvelopeStatus, utcnow
from schemas.errors import ConfigError
from signing import NoSigning
from signing.testing import FakeSigner, attempts
from tests.helpers import OTHER, REGION, delete_queues, envelope, hub_config, unique, wait_until

CONNECTIONS = """\
connections:
  region: {adapter: memory}
routes:
  - {name: to-region, match: {recipient_eik: ['121759222']}, deliver_to: [region]}
"""


@pytest.mark.parametrize(
    ("signing", "expected"),
    [
        pytest.param("signers: {qes: {kind: pades}}", ["signing", "signers.qes.kind", "unknown signer kind 'pades'",
                                                       "known: none, qes, testing"], id="unknown-kind"),
        pytest.param("signers: {qes: {kind: testing, transient_failure: 2}}",
                     ["signers.qes.transient_failure", "unknown key", "signer kind testing"], id="unknown-setting"),
        pytest.param("signers: {qes: {kind: testing, transient_failures: -1}}",
                     ["signers.qes.transient_failures", "greater than or equal to 0"], id="bad-setting"),
        pytest.param("routes: {to-region: qes}", ["routes.to-region", "signer 'qes'", "not under signing.signers"],
                     id="unknown-signer-for-a-route"),
        pytest.param("default: qes", ["default", "signer 'qes'", "known: none"], id="unknown-default-signer"),
        pytest.param("routes: {to-regoin: none}", ["signing.routes", "route 'to-regoin'", "known: to-region"],
                     id="unknown-route"),
        pytest.param("signer: {}", ["signing.signer", "unknown key"], id="unknown-key"),
    ],
)
def test_signing_configuration_errors_name_the_file_and_the_key(tmp_path: Path, signing: str,
                                                                 expected: list[str]) -> None:
    path = tmp_path / "kurier.yaml"
    path.write_text(CONNECTIONS + "signing: {" + signing.replace("\n", " ") + "}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message, message


def test_each_route_gets_its_signer_and_each_worker_its_own_signer_objects(tmp_path: Path) -> None:
    path = tmp_path / "kurier.yaml"
    path.write_text(CONNECTIONS + """\
default_route: {deliver_to: [region]}
signing:
  signers: {qes: {kind: testing}, unused: {kind: testing}}
  routes: {to-region: qes}
""", encoding="utf-8")
    table = signer_table(load_config(path).signing)
    first, second = table.build(), table.build()
    name, signer = first.for_route("to-region")
    assert name == "qes" and isinstance(signer, FakeSigner)
    assert first.for_route("default") == ("none", first.for_route("anything else")[1])
    assert isinstance(first.for_route("default")[1], NoSigning)  # routes not listed: the default, none
    assert second.for_route("to-region")[1] is not signer  # pyhanko's signers are not thread-safe


@pytest.fixture
def make_hub(tmp_path: Path, backend: dict[str, str]) -> Iterator[Any]:
    hubs: list[Hub] = []

    def make(signers: dict[str, Any], **overrides: Any) -> tuple[Hub, str]:
        name = unique("region")
        settings: dict[str, Any] = {
            "connections": {name: {"adapter": "memory"}},
            "routes": [{"name": "to-region", "match": {"recipient_eik": [REGION.eik]}, "deliver_to": [name]}],
            "default_route": {"deliver_to": [name]},
            "signing": {"signers": signers, "routes": {"to-region": "qes"}},
            **overrides,
        }
        hub = Hub(hub_config(tmp_path, backend, **settings), with_sources=False)
        hub.start()
        hubs.append(hub)
        return hub, name

    yield make
    for hub in hubs:
        hub.stop()
        delete_queues(hub.config)


def _sign_events(hub: Hub, envelope_id: str) -> list[tuple[str, str]]:
    detail = hub.journal.get(envelope_id)
    assert detail is not None
    return [(e.outcome, e.detail or "") for e in detail.events if e.stage == "sign"]


def _event_time(hub: Hub, envelope_id: str, stage: str, outcome: str) -> Any:
    detail = hub.journal.get(envelope_id)
    assert detail is not None
    return next(e.at for e in detail.events if (e.stage, e.outcome) == (stage, outcome))


def test_a_transient_signer_failure_is_retried_for_that_envelope_alone(make_hub: Any) -> None:
    # Given a route signed by a signer that fails twice on one document (the signing service hiccups)
    hub, dest = make_hub({"qes": {"kind": "testing", "transient_failures": 2, "subject_contains": "СБОЙ"}},
                         retry={"first_delay_seconds": 0.5, "max_delay_seconds": 1.0, "in_process_attempts": 1})
    # When it comes in one batch with four others
    docs = [envelope(subject=f"Писмо {i}") for i in range(2)] + [envelope(subject="СБОЙ при подписване")] + \
        [envelope(subject=f"Писмо {i}") for i in range(2, 4)]
    unsigned = envelope(recipient=OTHER, subject="СБОЙ, но по подразбиране не се подписва")
    receipts = hub.submit_many([*docs, unsigned])
    ids = [r.envelope_id for r in receipts]
    flaky = ids[2]
    # Then it is signed on its third try and delivered once
    wait_until(lambda: hub.journal.statuses([flaky]).get(flaky) == "delivered", timeout=30, what="the flaky one")
    wait_until(lambda: hub.journal.count(status="delivered") == 6, what="all six delivered")
    assert attempts("qes")[flaky] == 3
    sign = _sign_events(hub, flaky)
    assert [outcome for outcome, _ in sign] == ["retry", "retry", "ok"]
    assert "attempt 1 failed: signer 'qes': [signer-unavailable]" in sign[0][1] and "next try" in sign[0][1]
    assert "attempt 2 failed" in sign[1][1] and "try 3" in sign[2][1]
    assert len(sink(dest).delivered) == 6
    # And the batch's other envelopes were not held back: signed once each, delivered before it was signed
    signed_at = _event_time(hub, flaky, "sign", "ok")
    for other in [i for i in ids if i != flaky]:
        assert _event_time(hub, other, "deliver", "delivered") < signed_at
    assert all(attempts("qes")[i] == 1 for i in ids[:2] + ids[3:5])
    # another route: the default, no signing (said by its route event, no sign row of its own)
    other = hub.journal.get(ids[5])
    assert other is not None and not _sign_events(hub, ids[5])
    assert "sign skipped" in next(e.detail or "" for e in other.events if e.stage == "route")


def test_a_permanent_signer_failure_fails_that_envelope_with_its_reason(make_hub: Any) -> None:
    hub, dest = make_hub({"qes": {"kind": "testing", "permanent": True, "subject_contains": "отменен"}})
    bad, good = hub.submit_many([envelope(subject="подпис с отменен сертификат"), envelope(subject="наред")])
    wait_until(lambda: hub.journal.statuses([bad.envelope_id, good.envelope_id]) ==
               {bad.envelope_id: "failed", good.envelope_id: "delivered"}, what="one failed, one delivered")
    detail = hub.journal.get(bad.envelope_id)
    assert detail is not None
    assert detail.summary.error and "the signing certificate is revoked" in detail.summary.error
    assert [(o, d.startswith("[signing-refused]")) for o, d in _sign_events(hub, bad.envelope_id)] == [("failed", True)]
    assert detail.deliveries == [] and list(sink(dest).delivered) == [f"{good.envelope_id}:{dest}"]


def test_a_signer_that_stays_down_fails_the_envelope_after_max_attempts(make_hub: Any) -> None:
    hub, dest = make_hub({"qes": {"kind": "testing", "transient_failures": 1000}},
                         retry={"first_delay_seconds": 0.05, "max_delay_seconds": 0.1, "max_attempts": 3})
    receipt = hub.submit(envelope())
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) == "failed")
    detail = hub.journal.get(receipt.envelope_id)
    assert detail is not None
    assert [o for o, _ in _sign_events(hub, receipt.envelope_id)] == ["retry", "retry", "failed"]
    assert detail.summary.error and detail.summary.error.startswith("gave up after 3 attempts: signer 'qes'")
    assert not sink(dest).delivered


ACCEPTED = [StageEvent("receive", "ok"), StageEvent("validate", "ok")]


def _retry(journal: Journal, env_id: str, max_attempts: int = 3) -> PlanOutcome:
    plan = PlanOutcome(env_id, EnvelopeStatus.RECEIVED, [StageEvent("transform", "skipped"),
                                                         StageEvent("sign", "retry", "signer 'qes': busy")],
                       error_code="signer-unavailable", error="busy")
    [done] = journal.retry_received([plan], stage="sign", max_attempts=max_attempts, first_delay=10.0,
                                    max_delay=600.0, grace=120.0)
    return done


def test_the_journal_counts_sign_tries_since_an_operator_last_reopened_the_envelope(journal_url: str) -> None:
    journal = Journal(journal_url, actor="test")
    journal.upgrade()
    doc = envelope()
    journal.accept([doc], ACCEPTED)
    try:
        first = _retry(journal, doc.id)
        assert first.status == EnvelopeStatus.RECEIVED and "attempt 1 failed: signer 'qes': busy" in str(first.events)
        # Not before its back-off: the sweeper looks for received envelopes older than its grace period
        assert doc.id not in journal.stale_received(utcnow() - timedelta(seconds=120))
        assert doc.id in journal.stale_received(utcnow() + timedelta(seconds=11) - timedelta(seconds=120))
        assert "attempt 2 failed" in str(_retry(journal, doc.id).events)
        gave_up = _retry(journal, doc.id)
        assert gave_up.status == EnvelopeStatus.FAILED and gave_up.error == "gave up after 3 attempts: busy"
        assert journal.statuses([doc.id]) == {doc.id: "failed"}
        # When an operator re-opens it, it gets its tries again
        assert journal.retry(doc.id, who="operator test") == 1
        assert "attempt 1 failed" in str(_retry(journal, doc.id).events)
        detail = journal.get(doc.id)
        assert detail is not None
        assert [(e.stage, e.outcome) for e in detail.events if e.stage in ("sign", "operator")] == [
            ("sign", "retry"), ("sign", "retry"), ("sign", "failed"), ("operator", "retry"), ("sign", "retry")]
    finally:
        journal.dispose()
