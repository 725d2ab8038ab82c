"""The hub end to end, on the embedded defaults and on RabbitMQ + PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Producer

from adapters.memory import sink
from router.hub import Hub
from router.journal import StageEvent
from router.journal.records import aware as aware_utc
from router.messages import inbound_messages
from router.queues import Broker, ConfirmingPublisher
from router.sealer import Sealer
from schemas.envelope import Party
from schemas.errors import Refused
from tests.helpers import OTHER, REGION, delete_queues, envelope, hub_config, unique, wait_until
from tests.seal_fixtures import all_sealed


def _one_sink(name: str) -> dict[str, Any]:
    return {"connections": {name: {"adapter": "memory"}}, "default_route": {"deliver_to": [name]}}


def test_valid_documents_are_delivered_once_each_even_when_resubmitted(make_hub: Any) -> None:
    name = unique("region")
    hub = make_hub(**_one_sink(name))
    docs = [envelope(subject=f"Писмо {i}") for i in range(40)]

    # Given a batch accepted, When the AIS sends the same documents again (a resend after a timeout)
    first = hub.submit_many(docs)
    again = hub.submit_many(docs)

    # Then each is delivered exactly once, and the resend is recognised as such
    wait_until(lambda: hub.journal.status_counts().get("delivered") == 40, what="40 delivered")
    assert len(sink(name).delivered) == 40
    assert all(not r.duplicate for r in first) and all(r.duplicate for r in again)
    assert [r.envelope_id for r in first] == [r.envelope_id for r in again]


def test_the_journal_tells_each_stage_of_a_document(make_hub: Any) -> None:
    name = unique("region")
    hub = make_hub(**_one_sink(name))
    receipt = hub.submit(envelope())
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) == "delivered")

    detail = hub.journal.get(receipt.envelope_id)
    assert detail is not None
    stages = [(e.stage, e.outcome) for e in detail.events]
    # stages with nothing to do write no row of their own: the route event says they were passed
    assert stages == [("route", "ok"), ("deliver", "delivered")]
    route = detail.events[0].detail or ""
    assert "transform skipped: no transform applies" in route and "sign skipped: no signing policy" in route
    # received and validated: the "accepted" status; then queued and delivered at the recipient
    assert [(s.destination, s.status.value) for s in detail.statuses] == [
        (None, "accepted"), (name, "queued"), (name, "delivered")]
    assert detail.deliveries[0].destination == name and detail.deliveries[0].status == "delivered"
    assert detail.summary.reg_number == "ОА-01-123/15.12.2025"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"sender": Party(eik="000695236", name="грешен ЕИК")}, "invalid-eik"),
        ({"recipient": Party(eik="12345", name="къс ЕИК")}, "invalid-eik"),
        ({"recipient": Party(name="без идентификатор")}, "missing-recipient"),
        ({"recipient": OTHER}, "unknown-recipient"),
        ({"kind": ""}, "invalid-document"),
    ],
)
def test_invalid_documents_are_refused_with_a_reason_and_journaled(make_hub: Any, fields: dict[str, Any],
                                                                   code: str) -> None:
    name = unique("region")
    hub = make_hub(connections={name: {"adapter": "memory"}},
                   routes=[{"name": "region", "match": {"recipient_eik": [REGION.eik]}, "deliver_to": [name]}])
    with pytest.raises(Refused) as refused:
        hub.submit(envelope(**fields))
    assert refused.value.code == code
    row = hub.journal.get(refused.value.journal_id)
    assert row is not None and row.summary.status == "refused" and row.summary.error == str(refused.value)

    # And the hub goes on: a valid document right after is delivered
    ok = hub.submit(envelope())
    wait_until(lambda: hub.journal.statuses([ok.envelope_id]).get(ok.envelope_id) == "delivered")


def test_a_reused_document_guid_with_other_content_is_refused(make_hub: Any) -> None:
    hub = make_hub(**_one_sink(unique("region")))
    first = envelope()
    hub.submit(first)
    with pytest.raises(Refused) as refused:
        hub.submit(first.model_copy(update={"subject": "съвсем друг документ", "id": "x" * 32}))
    assert refused.value.code == "duplicate-guid"


def test_routes_fan_out_and_the_default_route_takes_the_rest(make_hub: Any) -> None:
    a, b, c = unique("a"), unique("b"), unique("c")
    hub = make_hub(connections={n: {"adapter": "memory"} for n in (a, b, c)},
                   routes=[{"name": "region", "match": {"recipient_eik": [REGION.eik], "kind": ["заповед"]},
                            "deliver_to": [a, b]}],
                   default_route={"deliver_to": [c]})
    to_region = hub.submit(envelope())
    elsewhere = hub.submit(envelope(recipient=OTHER))
    wait_until(lambda: hub.journal.status_counts().get("delivered") == 2)
    assert set(sink(a).delivered) == {f"{to_region.envelope_id}:{a}"}
    assert set(sink(b).delivered) == {f"{to_region.envelope_id}:{b}"}
    assert set(sink(c).delivered) == {f"{elsewhere.envelope_id}:{c}"}


def test_a_destination_outage_is_retried_until_delivered(make_hub: Any) -> None:
    name = unique("flaky")
    hub = make_hub(connections={name: {"adapter": "memory", "fail_first": 3}}, default_route={"deliver_to": [name]})
    receipt = hub.submit(envelope())
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) == "delivered",
               timeout=30)
    detail = hub.journal.get(receipt.envelope_id)
    assert detail is not None
    outcomes = [e.outcome for e in detail.events if e.stage == "deliver"]
    assert outcomes[-1] == "delivered" and "retry" in outcomes
    assert detail.deliveries[0].attempts == len(outcomes)
    assert len(sink(name).delivered) == 1


def test_a_destination_that_stays_down_fails_after_max_attempts_and_is_kept(make_hub: Any) -> None:
    name = unique("down")
    hub = make_hub(connections={name: {"adapter": "memory", "fail_first": 1000}},
                   default_route={"deliver_to": [name]},
                   retry={"first_delay_seconds": 0.05, "max_delay_seconds": 0.1, "in_process_attempts": 1,
                          "max_attempts": 3})
    receipt = hub.submit(envelope())
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) == "failed")
    detail = hub.journal.get(receipt.envelope_id)
    assert detail is not None and detail.deliveries[0].status == "failed"
    assert "gave up after 3 attempts" in (detail.deliveries[0].last_error or "")
    assert detail.envelope["subject"]  # the document itself is kept for an operator


def test_a_connection_with_its_own_retry_schedule_is_retried_by_it_and_the_others_by_the_global_one(
        make_hub: Any) -> None:
    patient, quick = unique("patient"), unique("quick")
    # Given a peer retried on its own, slow schedule (as a SEOS peer is) and one on the global, quick one
    hub = make_hub(connections={
        patient: {"adapter": "memory", "fail_first": 1000,
                  "delivery": {"retry": {"first_delay_seconds": 900, "max_delay_seconds": 230400,
                                         "in_process_attempts": 1, "max_attempts": 11}}},
        quick: {"adapter": "memory", "fail_first": 1000}},
        routes=[{"name": "slow", "match": {"kind": ["Заповед"]}, "deliver_to": [patient]}],
        default_route={"deliver_to": [quick]},
        retry={"first_delay_seconds": 0.05, "max_delay_seconds": 0.1, "in_process_attempts": 1, "max_attempts": 2})
    slow, fast = hub.submit(envelope(kind="Заповед")), hub.submit(envelope(kind="Писмо"))
    # Then the quick one gives up after the global two attempts
    wait_until(lambda: hub.journal.statuses([fast.envelope_id]).get(fast.envelope_id) == "failed")
    # and the patient one waits its first 15 minutes before trying again, its attempts far from spent
    wait_until(lambda: (d := hub.journal.get(slow.envelope_id)) is not None and d.deliveries
               and d.deliveries[0].status == "retry")
    delivery = hub.journal.get(slow.envelope_id).deliveries[0]  # type: ignore[union-attr]
    assert delivery.attempts == 1 and delivery.next_try is not None
    wait = (aware_utc(delivery.next_try) - datetime.now(UTC)).total_seconds()
    assert 850 < wait <= 900


def test_an_unreadable_message_goes_to_the_dead_letter_queue_and_work_goes_on(make_hub: Any) -> None:
    name = unique("region")
    hub = make_hub(**_one_sink(name))
    with Connection(hub.config.broker_url, transport_options={"polling_interval": 0.005}) as conn:
        Producer(conn.channel(), exchange=hub.topology.exchange).publish(
            b"\xff not json", routing_key="inbound", content_type="application/json", content_encoding="binary")
    receipt = hub.submit(envelope())
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) == "delivered")
    wait_until(lambda: Broker(hub.config.broker_url, hub.topology).depths()[hub.topology.dead.name] == 1,
               what="one dead letter")


def test_an_envelope_the_journal_does_not_know_is_kept_as_a_dead_letter_not_dropped(make_hub: Any) -> None:
    # Given a message holding a journaled envelope and one the journal never saw (e.g. a restored backup)
    name = unique("region")
    hub = make_hub(**_one_sink(name))
    known, stranger = envelope(), envelope()
    hub.journal.accept([known], [StageEvent("receive", "ok"), StageEvent("validate", "ok")])
    with Connection(hub.config.broker_url, transport_options={"polling_interval": 0.005}) as conn:
        ConfirmingPublisher(conn, hub.topology).publish(inbound_messages([known, stranger], 100))
    # Then the known one is delivered, and the stranger waits in the dead-letter queue for an operator
    wait_until(lambda: hub.journal.statuses([known.id]).get(known.id) == "delivered")
    wait_until(lambda: Broker(hub.config.broker_url, hub.topology).depths()[hub.topology.dead.name] == 1,
               what="the stranger as a dead letter")
    assert list(sink(name).delivered) == [f"{known.id}:{name}"]


def test_an_envelope_journaled_but_never_queued_is_recovered(make_hub: Any) -> None:
    # Given a document journaled as received whose queue message was lost (crash between commit and publish)
    name = unique("region")
    hub = make_hub(start=False, **_one_sink(name))
    hub.journal.upgrade()
    lost = envelope()
    hub.journal.accept([lost], [StageEvent("receive", "ok"), StageEvent("validate", "ok")])
    # When the hub starts, Then the sweeper finds it in the journal and it is delivered
    hub.start()
    wait_until(lambda: hub.journal.statuses([lost.id]).get(lost.id) == "delivered", timeout=30)
    assert len(sink(name).delivered) == 1


def test_worker_processes_share_the_work_on_rabbitmq(tmp_path: Path, amqp_url: str, pg_url: str) -> None:
    from tests.conftest import _fresh

    backend = {"broker_url": amqp_url, "journal_url": _fresh(pg_url), "queue_prefix": unique("kurier-procs")}
    config = hub_config(tmp_path, backend, connections={"region": {"adapter": "memory"}},
                        default_route={"deliver_to": ["region"]}, processing={"worker_processes": 2})
    hub = Hub(config, with_sources=False)
    # The parent keeps intake and recovery; two worker processes do the pipeline and the deliveries.
    hub.start(roles=frozenset({"sweep", "sources"}))
    try:
        receipts = hub.submit_many([envelope(subject=f"Писмо {i}") for i in range(200)])
        wait_until(lambda: hub.journal.count(status="delivered") == 200, timeout=60, what="200 delivered")
        details = [hub.journal.get(r.envelope_id) for r in receipts[:20]]
        intake = {s.actor for d in details if d for s in d.statuses if s.status.value == "accepted"}
        workers = {e.actor for d in details if d for e in d.events}
        assert intake == {hub.actor} and workers and hub.actor not in workers  # processing and delivery in the children
        # The sealer hashes every evidence row: a process of its own, off the intake's interpreter
        assert [c.name for c in hub._children] == ["kurier-worker-1", "kurier-worker-2", "kurier-sealer-1"]
        assert not any(isinstance(t, Sealer) for t in hub._threads)
        wait_until(lambda: all_sealed(hub.journal), timeout=30, what="every evidence row sealed by the sealer process")
    finally:
        hub.stop()
        delete_queues(config)


def test_worker_processes_need_a_shared_broker(tmp_path: Path) -> None:
    from schemas.errors import ConfigError

    with pytest.raises(ConfigError, match="worker_processes needs a broker shared between processes"):
        hub_config(tmp_path, {"broker_url": "memory://"}, processing={"worker_processes": 1})


def test_an_operator_can_retry_a_failed_delivery_once_the_destination_is_back(make_hub: Any) -> None:
    name = unique("down")
    hub = make_hub(connections={name: {"adapter": "memory", "fail_first": 2}}, default_route={"deliver_to": [name]},
                   retry={"first_delay_seconds": 0.05, "max_delay_seconds": 0.1, "in_process_attempts": 1,
                          "max_attempts": 2})
    receipt = hub.submit(envelope())
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) == "failed")
    # When the operator retries it (the destination works again: its outage was two attempts long)
    assert hub.journal.retry(receipt.envelope_id, who="operator test") == 1
    wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) == "delivered")
    detail = hub.journal.get(receipt.envelope_id)
    assert detail is not None and ("operator", "retry") in [(e.stage, e.outcome) for e in detail.events]
    assert len(sink(name).delivered) == 1
    assert hub.journal.retry(receipt.envelope_id, who="operator test") == 0  # delivered: nothing to retry
