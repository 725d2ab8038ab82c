"""Queues on kombu: the declared topology, batched publishing with publisher confirms, batch consuming.

One code path serves both transports. RabbitMQ (``amqp://``) keeps messages through a crash and
confirms each publish; the embedded transport (``memory://``) needs no server and lives in the
process, so what it loses in a crash is re-queued from the journal (see :mod:`router.recovery`).

Throughput comes from batches, not from weaker guarantees: a batch of up to ``batch_size`` messages
is handled, journaled in one transaction, its outgoing messages published with their confirms in
flight together, and only then acknowledged (with one ``multiple`` ack on RabbitMQ).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Consumer, Exchange, Message, Producer, Queue
from kombu.exceptions import OperationalError as KombuOperationalError

from schemas.errors import Permanent, Transient, redact_secrets

__all__ = ["BROKER_UNAVAILABLE", "BatchConsumer", "Broker", "ConfirmingPublisher", "OutMessage", "Topology"]

log = logging.getLogger("kurier.queues")

BROKER_UNAVAILABLE = "broker-unavailable"


def _broker_errors(conn: Connection) -> tuple[type[BaseException], ...]:
    """What kombu and the transport raise when the broker is gone or refuses (translated at this edge)."""
    return (KombuOperationalError, OSError, *conn.connection_errors, *conn.channel_errors)


def _reason(exc: BaseException) -> str:
    return redact_secrets((str(exc).strip().splitlines() or [type(exc).__name__])[0] or type(exc).__name__, limit=200)


class Topology:
    """Kurier's exchange and queues: the processing stage, one delivery queue per destination, dead letters."""

    def __init__(self, prefix: str, destinations: Iterable[str]) -> None:
        self.prefix = prefix
        self.exchange = Exchange(prefix, type="direct", durable=True, delivery_mode="persistent")
        self.inbound = Queue(f"{prefix}.inbound", self.exchange, routing_key="inbound", durable=True)
        self.dead = Queue(f"{prefix}.dead", self.exchange, routing_key="dead", durable=True)
        self.deliveries = {d: self._delivery_queue(d) for d in sorted(destinations)}

    def _delivery_queue(self, destination: str) -> Queue:
        return Queue(f"{self.prefix}.deliver.{destination}", self.exchange, routing_key=f"deliver.{destination}",
                     durable=True)

    @staticmethod
    def delivery_key(destination: str) -> str:
        return f"deliver.{destination}"

    def all_queues(self) -> list[Queue]:
        return [self.inbound, self.dead, *self.deliveries.values()]


@dataclass
class OutMessage:
    routing_key: str
    body: str | dict[str, Any]  # a str is JSON already written
    headers: dict[str, Any] = field(default_factory=dict)


class Broker:
    """Makes connections to the configured transport and declares the topology. No global state."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        options: dict[str, Any] = {}
        if url.startswith("memory"):
            # The embedded transport polls; 5 ms keeps latency low without spinning a core.
            options["polling_interval"] = 0.005
        self._options = options

    @property
    def durable(self) -> bool:
        """Whether queued messages outlive this process (RabbitMQ) or not (embedded)."""
        return not self.url.startswith("memory")

    def unavailable(self, exc: BaseException) -> Transient:
        """The error tree's word for a broker that cannot be reached or refuses us."""
        return Transient(f"the message broker at {redact_secrets(self.url, limit=None)} is unavailable: "
                         f"{_reason(exc)}", code=BROKER_UNAVAILABLE)

    def connect(self) -> Connection:
        """A connection, or :class:`Transient` naming the broker (password hidden) and why it failed."""
        conn = Connection(self.url, transport_options=self._options, heartbeat=0)
        try:
            conn.ensure_connection(max_retries=3, interval_start=0.5, interval_step=1, interval_max=3)
        except _broker_errors(conn) as exc:
            with contextlib.suppress(Exception):  # nothing was opened
                conn.release()
            raise self.unavailable(exc) from exc
        return conn

    def declare(self) -> None:
        with self.connect() as conn:
            try:
                channel = conn.default_channel
                for queue in self.topology.all_queues():
                    queue.bind(channel).declare()
            except conn.channel_errors as exc:
                # e.g. a queue of that name exists with other settings: an operator must look, retrying won't help
                raise Permanent(f"the message broker refused to declare Kurier's queues ({self.topology.prefix}.*): "
                                f"{_reason(exc)}", code="broker-refused") from exc
            except _broker_errors(conn) as exc:
                raise self.unavailable(exc) from exc

    def delete(self) -> None:
        """Remove this topology's queues and exchange (benchmarks and tests own theirs; never production)."""
        with self.connect() as conn:
            channel = conn.default_channel
            for queue in self.topology.all_queues():
                queue.bind(channel).delete()
            self.topology.exchange.bind(channel).delete()

    def depths(self) -> dict[str, int]:
        result: dict[str, int] = {}
        with self.connect() as conn:
            channel = conn.default_channel
            for queue in self.topology.all_queues():
                try:
                    _, count, _ = queue.bind(channel).queue_declare(passive=True)
                except Exception:  # a queue that vanished: say so as -1 rather than fail the dashboard
                    count = -1
                result[queue.name] = int(count)
        return result

    def ping(self) -> None:
        try:
            with self.connect() as conn:
                conn.default_channel  # noqa: B018 - opening a channel is the check
        except Transient:
            raise
        except Exception as exc:
            raise Transient(f"message broker unreachable: {type(exc).__name__}") from exc


class ConfirmingPublisher:
    """Publishes persistent messages and returns only when the broker has confirmed every one.

    On RabbitMQ the confirms of a whole batch are in flight together (``confirm_select`` on the channel,
    then the acks collected with ``drain_events``): the guarantee of a confirm per message at the cost
    of one round trip per batch. The embedded transport stores synchronously, so publish returning is
    the confirmation.
    """

    def __init__(self, connection: Connection, topology: Topology, *, timeout: float = 30.0) -> None:
        self.connection = connection
        self.topology = topology
        self.timeout = timeout
        self.channel = connection.channel()
        self._amqp = connection.transport.driver_type == "amqp"
        self._seq = 0
        self._unconfirmed: set[int] = set()
        self._failed: list[str] = []
        if self._amqp:
            self.channel.confirm_select()
            self.channel.events["basic_ack"].add(self._on_ack)
            self.channel.events["basic_nack"].add(self._on_nack)
            self.channel.events["basic_return"].add(self._on_return)
        self.producer = Producer(self.channel, exchange=topology.exchange, serializer="json")
        self._keys = {str(q.routing_key) for q in topology.all_queues()}

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        else:
            self._unconfirmed.discard(tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._on_ack(tag, multiple)
        self._failed.append(f"broker refused message {tag}")

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._failed.append(f"no queue for routing key {routing_key!r}")

    def publish(self, messages: Sequence[OutMessage]) -> None:
        """Publish and wait for every confirm; :class:`Transient` when the broker fails or does not confirm."""
        if not messages:
            return
        unknown = {m.routing_key for m in messages} - self._keys
        if unknown:
            # RabbitMQ would return such a message (mandatory); the embedded transport would drop it.
            raise Transient(f"no queue for routing key(s) {', '.join(sorted(unknown))}")
        try:
            self._publish(messages)
        except _broker_errors(self.connection) as exc:
            raise Transient(f"the message broker is unavailable: {_reason(exc)}", code=BROKER_UNAVAILABLE) from exc

    def _publish(self, messages: Sequence[OutMessage]) -> None:
        self._failed.clear()
        for msg in messages:
            # A str body is JSON already written (see router.messages): kombu must not serialize it again.
            written = {"content_type": "application/json", "content_encoding": "utf-8"} \
                if isinstance(msg.body, str) else {}
            self.producer.publish(
                msg.body, routing_key=msg.routing_key, headers=msg.headers, delivery_mode=2,
                mandatory=self._amqp, retry=False, **written,
            )
            if self._amqp:
                self._seq += 1
                self._unconfirmed.add(self._seq)
        if self._amqp:
            deadline = time.monotonic() + self.timeout
            while self._unconfirmed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Transient(f"broker did not confirm {len(self._unconfirmed)} message(s) in {self.timeout}s")
                try:
                    self.connection.drain_events(timeout=min(remaining, 1.0))
                except TimeoutError:
                    continue
                except socket.timeout:  # noqa: UP041 - py-amqp raises the socket alias
                    continue
        if self._failed:
            raise Transient("publish not confirmed: " + "; ".join(self._failed[:3]))


class BatchConsumer:
    """Collects up to ``n`` messages from its queues, waiting at most ``wait`` seconds for a batch to fill."""

    def __init__(self, connection: Connection, queues: Sequence[Queue], *, prefetch: int) -> None:
        self.connection = connection
        self.channel = connection.channel()
        self._amqp = connection.transport.driver_type == "amqp"
        self._buffer: list[Message] = []
        # on_message takes the raw message: decoding is ours, so a body that is not JSON becomes a dead
        # letter instead of an exception inside kombu's drain loop.
        self.consumer = Consumer(self.channel, queues=list(queues), on_message=self._on_message,
                                 prefetch_count=prefetch, auto_declare=True)
        self.consumer.consume()

    def _on_message(self, message: Message) -> None:
        self._buffer.append(message)

    def _items(self, message: Message) -> int:
        count = (message.headers or {}).get("count", 1)
        return count if isinstance(count, int) and count > 0 else 1

    def fetch(self, n: int, wait: float) -> list[Message]:
        """Messages carrying up to ``n`` items in all (a message says how many it carries in ``count``)."""
        deadline = time.monotonic() + wait
        while sum(self._items(m) for m in self._buffer) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and self._buffer:
                break
            try:
                self.connection.drain_events(timeout=max(remaining, 0.001) if self._buffer else max(wait, 0.05))
            except (TimeoutError, socket.timeout):  # noqa: UP041
                if not self._buffer or time.monotonic() >= deadline:
                    break
        taken = 0
        items = 0
        for message in self._buffer:
            if taken and items + self._items(message) > n:
                break
            taken += 1
            items += self._items(message)
        batch, self._buffer = self._buffer[:taken], self._buffer[taken:]
        return batch

    def ack(self, messages: Sequence[Message]) -> None:
        """Acknowledge a handled batch: one ``multiple`` ack on RabbitMQ, each message elsewhere."""
        if not messages:
            return
        if self._amqp:
            # Delivery tags rise in delivery order on this channel; everything up to the newest handled
            # message is handled, and messages still buffered have higher tags.
            newest = max(messages, key=lambda m: m.delivery_tag)
            newest.ack(multiple=True)
        else:
            for message in messages:
                message.ack()

    def requeue(self, messages: Sequence[Message]) -> None:
        for message in messages:
            if not message.acknowledged:
                message.requeue()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing after a broker failure: nothing left to cancel
            self.consumer.cancel()
