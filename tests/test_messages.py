"""Queue message bodies: what goes in comes out, once per hop; what cannot be read is kept with its reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Message, Producer
from pydantic import BaseModel, TypeAdapter

from router.hub import Hub
from router.messages import (
    DeadLetter,
    UnreadableMessage,
    dead_envelope,
    delivery_messages,
    inbound_messages,
    read_deliveries,
    read_inbound,
)
from router.queues import BatchConsumer, Broker, ConfirmingPublisher, OutMessage, Topology
from schemas.envelope import AttachmentRef, Correspondent, Envelope
from tests.helpers import delete_queues, envelope, hub_config, unique, wait_until


@pytest.fixture(params=["embedded", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    url = "memory://" if request.param == "embedded" else request.getfixturevalue("amqp_url")
    broker = Broker(url, Topology(unique("kurier-test-msg"), ["region", "archive"]))
    broker.declare()
    yield broker
    if broker.durable:
        broker.delete()


def _take(conn: Connection, queue: Any, items: int) -> list[Message]:
    """Messages holding ``items`` items in all from ``queue``, acknowledged."""
    consumer = BatchConsumer(conn, [queue], prefetch=100)
    taken: list[Message] = []

    def enough() -> bool:
        taken.extend(consumer.fetch(items, 0.05))
        return sum((m.headers or {}).get("count", 1) for m in taken) >= items

    wait_until(enough, what=f"{items} items from {queue.name}")
    consumer.ack(taken)
    return taken


def _hop(broker: Broker, out: list[OutMessage], queue: Any, items: int) -> list[Message]:
    """Publish ``out`` (confirmed), then take them from ``queue``: one real hop on the broker."""
    with broker.connect() as conn:
        ConfirmingPublisher(conn, broker.topology).publish(out)
        return _take(conn, queue, items)


def _awkward(i: int) -> Envelope:
    # What hand-written JSON gets wrong: quotes, backslashes, brackets, newlines, Cyrillic, optional fields.
    return envelope(subject=f'Заявление № {i}: "спешно" \\ [{{}}]"]}}\nред 2', comment=None if i % 2 else "бел.",
                    reg_date=date(2026, 1, 15), attachments=[AttachmentRef(file_name=f"молба {i}.pdf", size=123,
                                                                          sha256="ab" * 32)],
                    correspondents=[Correspondent(name="Иван Петров", egn="7501020018")])


def test_envelopes_come_out_of_a_queue_hop_as_they_went_in(broker: Broker) -> None:
    envs = [_awkward(i) for i in range(5)]
    out = inbound_messages(envs, per_message=2)
    assert [m.headers["count"] for m in out] == [2, 2, 1]
    received = _hop(broker, out, broker.topology.inbound, 5)
    # Each message names the documents it holds, and holds exactly them, unchanged
    assert [m.headers["envelope_ids"] for m in received] == [",".join(e.id for e in envs[i:i + 2]) for i in (0, 2, 4)]
    assert [env for m in received for env in read_inbound(m)] == envs


def test_deliveries_travel_per_destination_with_their_ids(broker: Broker) -> None:
    a, b, c = _awkward(1), _awkward(2), _awkward(3)
    items = [(f"{a.id}:region", "region", a), (f"{b.id}:archive", "archive", b), (f"{c.id}:region", "region", c)]
    out = delivery_messages(items, per_message=100)
    assert sorted(m.routing_key for m in out) == ["deliver.archive", "deliver.region"]
    region = _hop(broker, out, broker.topology.deliveries["region"], 2)
    assert [item for m in region for item in read_deliveries(m)] == [items[0], items[2]]
    assert region[0].headers["envelope_ids"] == f"{a.id},{c.id}"


def test_an_envelope_that_cannot_be_placed_is_kept_whole_in_its_dead_letter(broker: Broker) -> None:
    env = _awkward(7)
    [letter] = _hop(broker, [dead_envelope(env, f"delivery {env.id}:region is not in the journal", f"{env.id}:region")],
                    broker.topology.dead, 1)
    assert letter.headers["envelope_ids"] == env.id
    kept = DeadLetter.model_validate_json(letter.body)
    assert kept.envelope == env and kept.delivery_id == f"{env.id}:region" and "not in the journal" in kept.reason


def test_the_ids_header_names_only_whole_ids_when_a_message_holds_many() -> None:
    envs = [envelope() for _ in range(300)]
    [message] = inbound_messages(envs, per_message=300)
    named = message.headers["envelope_ids"].split(",")
    assert message.headers["count"] == 300 and len(message.headers["envelope_ids"]) <= 4000
    assert named == [e.id for e in envs[:len(named)]]


def test_a_reason_for_an_unreadable_body_is_one_short_line_whatever_the_body() -> None:
    huge = b'{"envelopes": [' + b'{"document_guid": 5},' * 50_000 + b"]"
    with pytest.raises(UnreadableMessage) as err:
        read_inbound(Message(body=huge))
    assert "\n" not in str(err.value) and len(str(err.value)) < 300
    assert "Invalid JSON" in str(err.value) and err.value.code == "unreadable-message"


@pytest.fixture
def hub(tmp_path: Path, backend: dict[str, str]) -> Iterator[Hub]:
    name = unique("region")
    # A sweeper that stays out of the way: it would re-queue work and be counted with it.
    config = hub_config(tmp_path, backend, connections={name: {"adapter": "memory"}},
                        default_route={"deliver_to": [name]},
                        processing={"sweep_interval_seconds": 60, "recovery_grace_seconds": 60, "batch_wait_ms": 5})
    hub = Hub(config, with_sources=False)
    hub.start()
    yield hub
    hub.stop()
    delete_queues(hub.config)


def test_an_unreadable_body_becomes_a_dead_letter_with_its_reason(hub: Hub) -> None:
    # Given two messages on the inbound queue that are not what Kurier writes: not JSON, and a body
    # whose envelope lacks its DocumentGUID
    wrong_shape = '{"envelopes": [{"id": "0badc0de", "source": "ais"}]}'
    with Connection(hub.config.broker_url, transport_options={"polling_interval": 0.005}) as conn:
        producer = Producer(conn.channel(), exchange=hub.topology.exchange)
        producer.publish(b"\xff not json", routing_key="inbound", content_type="application/json",
                         content_encoding="binary", headers={"count": 1})
        producer.publish(wrong_shape, routing_key="inbound", content_type="application/json",
                         content_encoding="utf-8", headers={"count": 1, "envelope_ids": "0badc0de"})
    # When the processing worker meets them, Then each is kept in the dead-letter queue with why
    with hub.broker.connect() as conn:
        letters = _take(conn, hub.topology.dead, 2)
    kept = {DeadLetter.model_validate_json(m.body).body: (DeadLetter.model_validate_json(m.body), m.headers)
            for m in letters}
    garbage, garbage_headers = kept["\\xff not json"]
    assert garbage.reason.startswith("unreadable message: body: Invalid JSON") and garbage.queue == "inbound"
    assert garbage_headers["reason"] == garbage.reason
    shape, shape_headers = kept[wrong_shape]
    assert shape.reason == "unreadable message: envelopes.0.document_guid: Field required"
    assert shape_headers["envelope_ids"] == "0badc0de"  # the documents it said it held, for an operator


class _Counter:
    """Envelopes written to JSON and read from it, per model, wherever pydantic does it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        dump, parse = BaseModel.model_dump_json, BaseModel.__dict__["model_validate_json"].__func__
        adapter_dump, adapter_parse = TypeAdapter.dump_json, TypeAdapter.validate_json

        def counted_dump(model: BaseModel, *args: Any, **kwargs: Any) -> str:
            self._add("dump", type(model).__name__, model)
            return dump(model, *args, **kwargs)

        def counted_parse(cls: type[BaseModel], *args: Any, **kwargs: Any) -> BaseModel:
            result = parse(cls, *args, **kwargs)
            self._add("parse", cls.__name__, result)
            return result

        def counted_adapter_dump(adapter: TypeAdapter[Any], value: Any, *args: Any, **kwargs: Any) -> bytes:
            self._add("dump", "TypeAdapter", value)
            return adapter_dump(adapter, value, *args, **kwargs)

        def counted_adapter_parse(adapter: TypeAdapter[Any], *args: Any, **kwargs: Any) -> Any:
            result = adapter_parse(adapter, *args, **kwargs)
            self._add("parse", "TypeAdapter", result)
            return result

        monkeypatch.setattr(BaseModel, "model_dump_json", counted_dump)
        monkeypatch.setattr(BaseModel, "model_validate_json", classmethod(counted_parse))
        monkeypatch.setattr(TypeAdapter, "dump_json", counted_adapter_dump)
        monkeypatch.setattr(TypeAdapter, "validate_json", counted_adapter_parse)

    def _add(self, what: str, model: str, value: Any) -> None:
        if n := _envelopes_in(value):
            self.counts[(what, model)] += n

    def of(self, what: str) -> dict[str, int]:
        return {model: n for (kind, model), n in self.counts.items() if kind == what}


def _envelopes_in(value: Any) -> int:
    if isinstance(value, Envelope):
        return 1
    if isinstance(value, BaseModel):
        return sum(_envelopes_in(getattr(value, f)) for f in type(value).model_fields)
    if isinstance(value, list | tuple):
        return sum(_envelopes_in(v) for v in value)
    if isinstance(value, dict):
        return sum(_envelopes_in(v) for v in value.values())
    return 0


def test_a_document_is_serialised_once_per_queue_hop_and_parsed_once_per_hop_consumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a hub on the embedded transport, and a count of every envelope pydantic writes or reads
    name = unique("region")
    config = hub_config(tmp_path, {"broker_url": "memory://", "journal_url": f"sqlite:///{tmp_path / 'j.sqlite3'}",
                                   "queue_prefix": unique("kurier-test")},
                        connections={name: {"adapter": "memory"}}, default_route={"deliver_to": [name]},
                        processing={"sweep_interval_seconds": 60, "recovery_grace_seconds": 60, "batch_wait_ms": 5})
    hub = Hub(config, with_sources=False)
    hub.start()
    counter = _Counter(monkeypatch)
    try:
        # When one document goes from submit to delivery
        receipt = hub.submit(envelope())
        wait_until(lambda: hub.journal.statuses([receipt.envelope_id]).get(receipt.envelope_id) == "delivered")
    finally:
        hub.stop()
    # Then each queue hop wrote it once and read it once, through its body model; the other dump is the
    # journal's intake (the stored envelope, which its fingerprint is taken from too).
    assert counter.of("dump") == {"InboundBody": 1, "DeliveryBody": 1, "Envelope": 1}, counter.counts
    assert counter.of("parse") == {"InboundBody": 1, "DeliveryBody": 1}, counter.counts
