"""The operations API as operators and Prometheus use it, over a real (SQLite) journal."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.api import create_app, redact_secrets
from router.journal import DeliveryOutcome, Journal, PlanOutcome, StageEvent
from router.metrics import Metrics
from schemas import Envelope, EnvelopeStatus, Party, new_guid

with warnings.catch_warnings():
    # Starlette >= 1.8 wants httpx2 for its TestClient and warns (an error under our pytest settings)
    # when it falls back to httpx; the client works the same. Drop this once httpx2 is a test dependency.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

TOKEN = "s3cret-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SOFIA, PLOVDIV, VARNA = "000695235", "121759222", "831902088"

ReadyCheck = Callable[[], dict[str, str]]


def _all_ok() -> dict[str, str]:
    return {"journal": "ok", "broker": "ok"}


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    journal = Journal(f"sqlite:///{tmp_path / 'journal.sqlite3'}", actor="test")
    journal.upgrade()
    yield journal
    journal.dispose()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def make_client(journal: Journal, metrics: Metrics) -> Callable[[ReadyCheck], TestClient]:
    return lambda ready: TestClient(create_app(journal, metrics, TOKEN, ready))


@pytest.fixture
def client(make_client: Callable[[ReadyCheck], TestClient]) -> TestClient:
    return make_client(_all_ok)


def _accept(journal: Journal, *, sender: str, recipient: str, reg_number: str, source: str = "ais-sofia") -> Envelope:
    env = Envelope(
        document_guid=new_guid(),
        source=source,
        sender=Party(eik=sender, name="Изпращач"),
        recipient=Party(eik=recipient, name="Получател"),
        kind="Писмо",
        subject="Относно: тест",
        reg_number=reg_number,
    )
    journal.accept([env], [StageEvent("intake", "accepted", f"from {source}")])
    return env


def _deliver(journal: Journal, env: Envelope, destination: str = "seos") -> None:
    journal.record_plans(
        [
            PlanOutcome(
                env.id,
                EnvelopeStatus.ROUTED,
                [StageEvent("route", "routed", destination), StageEvent("sign", "signed")],
                destinations=[destination],
            )
        ]
    )
    journal.record_deliveries(
        [DeliveryOutcome(f"{env.id}:{destination}", env.id, destination, "delivered", "SEOS accepted the message")]
    )


def _ids(response: Any) -> set[str]:
    return {m["id"] for m in response.json()}


# -- probes and authentication --------------------------------------------------------------------
def test_health_answers_without_a_token(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/api/v1/messages", "/api/v1/messages/x", "/api/v1/stats", "/metrics"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": b"Bearer \xc3\xa9t\xc3\xa9"},  # non-ASCII bytes must be refused, not crash the server
    ],
    ids=["missing", "wrong", "not-bearer", "non-ascii"],
)
def test_protected_endpoints_refuse_missing_or_wrong_token(
    client: TestClient, path: str, headers: dict[str, str]
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() == {
        "error": "unauthorized",
        "message": "Authentication required / Необходимо е удостоверяване",
    }


def test_an_empty_token_is_refused_at_start_up(journal: Journal, metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="token is empty"):
        create_app(journal, metrics, "", _all_ok)


def test_ready_is_200_when_every_component_is_ok(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "components": {"journal": "ok", "broker": "ok"}}


def test_ready_is_503_naming_the_failing_component_without_its_password(
    make_client: Callable[[ReadyCheck], TestClient],
) -> None:
    client = make_client(lambda: {"journal": "ok", "broker": "connection refused: amqp://kurier:hunter2@mq:5672//"})
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["components"] == {"journal": "ok", "broker": "connection refused: amqp://***@mq:5672//"}
    assert "hunter2" not in response.text


def test_ready_is_503_when_the_check_itself_raises_and_hides_the_password(
    make_client: Callable[[ReadyCheck], TestClient],
) -> None:
    def broken() -> dict[str, str]:
        raise ConnectionError("cannot reach amqp://guest:secret@rabbit.example:5672/kurier")

    response = make_client(broken).get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "secret" not in response.text
    assert "rabbit.example" in response.text  # the operator still learns which server is unreachable


def test_redaction_covers_database_urls_and_dsn_passwords() -> None:
    # An unescaped @ in the password must not leave its tail behind.
    url = redact_secrets("postgresql+psycopg://kurier:p@ss/w0rd@db/kurier failed")
    assert url == "postgresql+psycopg://***@db/kurier failed"
    dsn = redact_secrets("host=db user=kurier password=hunter2 dbname=k")
    assert dsn == "host=db user=kurier password=*** dbname=k"


# -- searching the journal ------------------------------------------------------------------------
def test_search_by_guid_with_or_without_braces_in_any_case(client: TestClient, journal: Journal) -> None:
    wanted = _accept(journal, sender=SOFIA, recipient=PLOVDIV, reg_number="РД-01-1")
    _accept(journal, sender=SOFIA, recipient=PLOVDIV, reg_number="РД-01-2")
    bare = wanted.document_guid.strip("{}")
    for guid in (wanted.document_guid, bare.upper(), "{" + bare.upper() + "}"):
        response = client.get("/api/v1/messages", params={"guid": guid}, headers=AUTH)
        assert response.status_code == 200
        assert _ids(response) == {wanted.id}, guid


def test_search_by_reg_number_eik_and_status(client: TestClient, journal: Journal) -> None:
    # Given: Sofia writes to Plovdiv (delivered), Varna writes to Sofia (still received)
    outgoing = _accept(journal, sender=SOFIA, recipient=PLOVDIV, reg_number="РД-01-123/2025")
    _deliver(journal, outgoing)
    incoming = _accept(journal, sender=VARNA, recipient=SOFIA, reg_number="08-00-7", source="ais-varna")
    # When/Then
    by_number = client.get("/api/v1/messages", params={"reg_number": "РД-01-123/2025"}, headers=AUTH)
    assert _ids(by_number) == {outgoing.id}
    assert by_number.json()[0]["sender_eik"] == SOFIA
    assert _ids(client.get("/api/v1/messages", params={"eik": SOFIA}, headers=AUTH)) == {outgoing.id, incoming.id}
    assert _ids(client.get("/api/v1/messages", params={"eik": PLOVDIV}, headers=AUTH)) == {outgoing.id}
    assert _ids(client.get("/api/v1/messages", params={"status": "delivered"}, headers=AUTH)) == {outgoing.id}
    assert _ids(client.get("/api/v1/messages", params={"status": "received"}, headers=AUTH)) == {incoming.id}
    assert _ids(client.get("/api/v1/messages", params={"source": "ais-varna"}, headers=AUTH)) == {incoming.id}


def test_search_refuses_an_unknown_status_and_an_unbounded_page(client: TestClient) -> None:
    assert client.get("/api/v1/messages", params={"status": "lost"}, headers=AUTH).status_code == 422
    assert client.get("/api/v1/messages", params={"limit": 501}, headers=AUTH).status_code == 422
    assert client.get("/api/v1/messages", params={"limit": 0}, headers=AUTH).status_code == 422


# -- one message ----------------------------------------------------------------------------------
def test_message_detail_shows_envelope_events_in_order_and_deliveries(client: TestClient, journal: Journal) -> None:
    env = _accept(journal, sender=SOFIA, recipient=PLOVDIV, reg_number="РД-01-5")
    _deliver(journal, env)

    response = client.get(f"/api/v1/messages/{env.id}", headers=AUTH)

    assert response.status_code == 200
    body = response.json()
    assert body["summary"]["status"] == "delivered"
    assert body["envelope"]["document_guid"] == env.document_guid
    assert [(e["stage"], e["outcome"]) for e in body["events"]] == [
        ("intake", "accepted"),
        ("route", "routed"),
        ("sign", "signed"),
        ("deliver", "delivered"),
    ]
    assert [(d["destination"], d["status"], d["attempts"]) for d in body["deliveries"]] == [("seos", "delivered", 1)]


def test_unknown_message_is_404_in_english_and_bulgarian(client: TestClient) -> None:
    response = client.get("/api/v1/messages/no-such-id", headers=AUTH)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "not_found"
    assert "No message" in body["message"] and "Няма съобщение" in body["message"]


def test_stats_count_envelopes_by_status_and_deliveries_by_destination(client: TestClient, journal: Journal) -> None:
    _deliver(journal, _accept(journal, sender=SOFIA, recipient=PLOVDIV, reg_number="1"))
    _accept(journal, sender=SOFIA, recipient=PLOVDIV, reg_number="2")
    journal.refuse(None, source="ais-sofia", stage="intake", error_code="invalid-xml", error="not XML")

    response = client.get("/api/v1/stats", headers=AUTH)

    assert response.status_code == 200
    assert response.json() == {
        "envelopes": {"delivered": 1, "received": 1, "refused": 1},
        "deliveries": {"seos": {"delivered": 1}},
    }


# -- metrics --------------------------------------------------------------------------------------
def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_expose_counters_and_journal_counts(client: TestClient, journal: Journal, metrics: Metrics) -> None:
    # Given: documents went through, and the journal holds one received envelope
    _accept(journal, sender=SOFIA, recipient=PLOVDIV, reg_number="1")
    metrics.add_journal_collector(journal)
    metrics.received("ais-sofia", 2)
    metrics.refused("ais-sofia", "invalid-xml")
    metrics.routed()
    metrics.delivery("seos", "delivered")
    metrics.delivery("seos", "retry")
    with metrics.time_stage("route"):
        pass
    metrics.set_queue_depth("kurier.process", 7)
    # When
    response = client.get("/metrics", headers=AUTH)
    # Then
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    assert samples[("kurier_documents_received_total", (("source", "ais-sofia"),))] == 2
    assert samples[("kurier_documents_refused_total", (("code", "invalid-xml"), ("source", "ais-sofia")))] == 1
    assert samples[("kurier_documents_routed_total", ())] == 1
    assert samples[("kurier_deliveries_total", (("destination", "seos"), ("outcome", "retry")))] == 1
    assert samples[("kurier_stage_seconds_count", (("stage", "route"),))] == 1
    assert samples[("kurier_queue_depth", (("queue", "kurier.process"),))] == 7
    assert samples[("kurier_envelopes", (("status", "received"),))] == 1
    assert samples[("kurier_envelopes", (("status", "failed"),))] == 0
    assert samples[("kurier_journal_up", ())] == 1


def test_metrics_still_scrape_when_the_journal_is_down(client: TestClient, metrics: Metrics) -> None:
    class DownJournal:
        def status_counts(self) -> dict[str, int]:
            raise ConnectionError("postgresql://kurier:pw@db/kurier: connection refused")

    metrics.add_journal_collector(DownJournal())
    metrics.received("ais-sofia")
    samples = _samples(client.get("/metrics", headers=AUTH).text)
    assert samples[("kurier_journal_up", ())] == 0
    assert samples[("kurier_documents_received_total", (("source", "ais-sofia"),))] == 1


def test_two_hubs_in_one_process_keep_separate_metrics() -> None:
    first, second = Metrics(), Metrics()
    first.received("ais-sofia")
    assert b'kurier_documents_received_total{source="ais-sofia"} 1.0' in first.render()[0]
    assert b"ais-sofia" not in second.render()[0]


def test_an_unknown_delivery_outcome_is_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="not one of delivered, retry, failed"):
        metrics.delivery("seos", "ok")


def test_a_journal_outage_is_503_with_a_reason_not_a_500(tmp_path: Path, metrics: Metrics) -> None:
    # Given an API over a journal whose database cannot be reached
    down = Journal("postgresql+psycopg://kurier:secret-pw@127.0.0.1:1/kurier", actor="test")
    client = TestClient(create_app(down, metrics, TOKEN, _all_ok))
    # When an operator searches, Then the answer is 503 saying it is temporary, in both languages, no password
    response = client.get("/api/v1/messages", headers=AUTH)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    body = response.json()
    assert body["error"] == "unavailable" and "Временно недостъпно" in body["message"]
    assert "secret-pw" not in response.text
    down.dispose()
