"""The circuit breaker of a destination, on an injected clock; its state in /metrics and the API."""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router.api import create_app
from router.circuit import CircuitBreaker, CircuitState
from router.journal import DeliveryOutcome, Journal, PlanOutcome, StageEvent
from router.metrics import Metrics
from schemas import EnvelopeStatus
from tests.helpers import Clock, envelope

with warnings.catch_warnings():  # see tests/test_api.py
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient


def breaker(clock: Clock, threshold: int = 3, open_seconds: float = 30.0, waiting: int = 7) -> CircuitBreaker:
    return CircuitBreaker("seos-plovdiv", failure_threshold=threshold, open_seconds=open_seconds, clock=clock,
                          waiting=lambda: waiting, remind_seconds=60.0)


def test_it_opens_after_the_threshold_of_failures_in_a_row_and_not_before() -> None:
    clock = Clock()
    circuit = breaker(clock)
    circuit.record_failure("timeout")
    circuit.record_failure("timeout")
    circuit.record_success()  # a success in between: the count starts again
    circuit.record_failure("timeout")
    circuit.record_failure("timeout")
    assert circuit.state == CircuitState.CLOSED and circuit.allow()
    circuit.record_failure("connection refused")
    assert circuit.state == CircuitState.OPEN
    assert not circuit.allow()
    snap = circuit.snapshot()
    assert (snap.consecutive_failures, snap.failures, snap.last_error) == (3, 5, "connection refused")
    assert snap.opened_at is not None and snap.last_success is not None


def test_after_open_seconds_exactly_one_probe_goes_and_its_success_closes_the_circuit() -> None:
    clock = Clock()
    circuit = breaker(clock)
    for _ in range(3):
        circuit.record_failure("timeout")
    clock.now += 29.9
    assert not circuit.allow() and circuit.state == CircuitState.OPEN
    clock.now += 0.2
    assert circuit.state == CircuitState.HALF_OPEN
    assert circuit.allow()  # the probe
    assert not circuit.allow() and not circuit.allow()  # everything else waits for its outcome
    circuit.record_success()
    assert circuit.state == CircuitState.CLOSED
    assert all(circuit.allow() for _ in range(10))
    assert circuit.snapshot().opened_at is None and circuit.snapshot().consecutive_failures == 0


def test_a_failed_probe_opens_the_circuit_again_for_open_seconds() -> None:
    clock = Clock()
    circuit = breaker(clock, threshold=1, open_seconds=10)
    circuit.record_failure("timeout")
    clock.now += 10
    assert circuit.allow()
    circuit.record_failure("still down")
    assert circuit.state == CircuitState.OPEN and not circuit.allow()
    clock.now += 9
    assert not circuit.allow()
    clock.now += 1
    assert circuit.allow() and not circuit.allow()


def test_a_probe_given_back_unused_lets_the_next_delivery_probe() -> None:
    clock = Clock()
    circuit = breaker(clock, threshold=1, open_seconds=5)
    circuit.record_failure("down")
    clock.now += 5
    assert circuit.allow()
    circuit.release()
    assert circuit.allow()


def test_only_one_of_many_threads_gets_the_probe() -> None:
    clock = Clock()
    circuit = breaker(clock, threshold=1, open_seconds=1)
    circuit.record_failure("down")
    clock.now += 1
    granted: list[bool] = []
    threads = [threading.Thread(target=lambda: granted.append(circuit.allow())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(granted) == [False] * 7 + [True]


def test_the_outage_is_logged_when_it_starts_at_intervals_and_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    circuit = breaker(clock, threshold=2, open_seconds=30, waiting=42)
    caplog.set_level(logging.INFO, logger="kurier.circuit")
    circuit.record_failure("timed out after 60s")
    circuit.record_failure("timed out after 60s")
    for _ in range(5):  # workers tick often: one line per interval, not per tick
        clock.now += 10
        circuit.tick()
    clock.now += 15
    circuit.tick()
    clock.now += 30
    circuit.allow()
    circuit.record_failure("timed out after 60s")  # a failed probe: not a new outage
    circuit.tick()
    clock.now += 31
    assert circuit.allow()
    circuit.record_success()
    circuit.tick()  # closed: nothing more to tell
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert "'seos-plovdiv' is unavailable after 2 failed deliveries in a row: timed out after 60s" in lines[0]
    assert "one probe every 30s; 42 deliveries waiting" in lines[0]
    assert "still unavailable (for 1m05s): timed out after 60s; 42 deliveries waiting" in lines[1]
    assert "'seos-plovdiv' is available again after 2m06s; 42 deliveries waiting" in lines[2]


def test_an_outage_line_is_written_even_when_the_waiting_count_cannot_be_read(
        caplog: pytest.LogCaptureFixture) -> None:
    def journal_down() -> int:
        raise ConnectionError("journal unreachable")

    circuit = CircuitBreaker("archive", failure_threshold=1, clock=Clock(), waiting=journal_down)
    caplog.set_level(logging.WARNING, logger="kurier.circuit")
    circuit.record_failure("disk full")
    assert [r.getMessage() for r in caplog.records] == [
        "destination 'archive' is unavailable after 1 failed deliveries in a row: disk full. Deliveries to it are "
        "paused, one probe every 30s"]


def _scrape(metrics: Metrics) -> dict[tuple[str, str], float]:
    body, _ = metrics.render()
    return {(s.name, s.labels.get("destination", "")): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def test_metrics_show_each_destinations_state_and_failures() -> None:
    clock = Clock()
    up, down = breaker(clock), CircuitBreaker("region", failure_threshold=2, open_seconds=30, clock=clock)
    metrics = Metrics()
    metrics.add_circuits([up, down])
    down.record_failure("outbox missing")
    down.record_failure("outbox missing")
    samples = _scrape(metrics)
    assert samples[("kurier_destination_circuit", "seos-plovdiv")] == 0
    assert samples[("kurier_destination_circuit", "region")] == 2
    assert samples[("kurier_destination_consecutive_failures", "region")] == 2
    assert samples[("kurier_destination_failures_total", "region")] == 2
    clock.now += 30
    assert _scrape(metrics)[("kurier_destination_circuit", "region")] == 1  # half-open: a probe may go


def test_the_api_lists_destinations_with_state_last_success_last_error_and_waiting(tmp_path: Path) -> None:
    # Given a journal with one delivered and two waiting deliveries for "region", and its circuit open
    journal = Journal(f"sqlite:///{tmp_path / 'journal.sqlite3'}", actor="test")
    journal.upgrade()
    envs = [envelope(subject=f"Писмо {i}") for i in range(3)]
    journal.accept(envs, [StageEvent("receive", "ok")])
    journal.record_plans([PlanOutcome(e.id, EnvelopeStatus.ROUTED, [], ["region"]) for e in envs])
    journal.record_deliveries([DeliveryOutcome(f"{envs[0].id}:region", envs[0].id, "region", "delivered", "ok")])
    clock = Clock()
    region = CircuitBreaker("region", failure_threshold=1, clock=clock)
    archive = CircuitBreaker("archive", clock=clock)
    region.record_success()
    region.record_failure("DestinationUnavailable: amqp://kurier:s3cret@peer:5672 refused the connection")
    metrics = Metrics()
    metrics.add_circuits([region, archive])
    client = TestClient(create_app(journal, metrics, "token", lambda: {"journal": "ok"}))

    # When an operator asks for the destinations
    response = client.get("/api/v1/destinations", headers={"Authorization": "Bearer token"})

    # Then each is listed with what its breaker saw and what waits for it in the journal, secrets hidden
    assert response.status_code == 200
    by_name = {d["name"]: d for d in response.json()}
    assert sorted(by_name) == ["archive", "region"]
    region_view = by_name["region"]
    assert region_view["state"] == "open" and region_view["consecutive_failures"] == 1
    assert (region_view["waiting"], region_view["delivered"], region_view["failed"]) == (2, 1, 0)
    assert region_view["last_success"] and region_view["outage_since"] and region_view["last_error_at"]
    assert "s3cret" not in region_view["last_error"] and "refused the connection" in region_view["last_error"]
    assert by_name["archive"]["state"] == "closed" and by_name["archive"]["last_error"] is None
    assert client.get("/api/v1/destinations").status_code == 401
    journal.dispose()
