"""The queue layer, written once and run on the embedded transport and on RabbitMQ."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from router.queues import BatchConsumer, Broker, ConfirmingPublisher, OutMessage, Topology
from schemas.errors import Transient


@pytest.fixture(params=["embedded", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    url = "memory://" if request.param == "embedded" else request.getfixturevalue("amqp_url")
    b = Broker(url, Topology(f"kurier-qtest-{uuid.uuid4().hex[:8]}", ["region"]))
    b.declare()
    yield b
    if b.durable:
        b.delete()


def _publish(broker: Broker, n: int, key: str = "inbound") -> None:
    with broker.connect() as conn:
        ConfirmingPublisher(conn, broker.topology).publish(
            [OutMessage(key, {"n": i, "текст": "Заповед"}, {"envelope_id": str(i)}) for i in range(n)])


def _drain(broker: Broker, batch: int = 100) -> list[int]:
    seen: list[int] = []
    with broker.connect() as conn:
        consumer = BatchConsumer(conn, [broker.topology.inbound], prefetch=300)
        while messages := consumer.fetch(batch, 0.3):
            assert len(messages) <= batch
            seen += [json.loads(m.body)["n"] for m in messages]
            consumer.ack(messages)
    return seen


def test_a_confirmed_batch_arrives_whole_in_order_and_is_gone_once_acknowledged(broker: Broker) -> None:
    _publish(broker, 250)
    assert _drain(broker) == list(range(250))
    assert broker.depths()[broker.topology.inbound.name] == 0


def test_messages_not_acknowledged_come_back(broker: Broker) -> None:
    _publish(broker, 30)
    with broker.connect() as conn:
        consumer = BatchConsumer(conn, [broker.topology.inbound], prefetch=300)
        taken = consumer.fetch(30, 1.0)
        assert len(taken) == 30
        if broker.durable:
            conn.close()  # a worker that dies holding a batch: RabbitMQ gives it to the next consumer
        else:
            consumer.requeue(taken)  # the embedded transport: a failed batch is put back explicitly
    assert sorted(_drain(broker)) == list(range(30))


def test_a_message_no_queue_takes_is_not_silently_confirmed(broker: Broker) -> None:
    with pytest.raises(Transient, match="no queue"):
        _publish(broker, 1, key="deliver.nowhere")
