"""Workers: a thread each, one connection each, handling batches from their queues.

The loop is the same for every worker: fetch a batch → handle it (journal committed inside) →
publish what it produced, confirmed → acknowledge the batch. A failure of the database or the broker
puts the batch back (nothing acknowledged) and the worker tries again after a pause; a message that
cannot be read at all goes to the dead-letter queue with the reason. One bad message never stops a
worker, and no message is acknowledged before its outcome is in the journal.

Each destination has workers of its own on its own queue (``connections.<name>.delivery.concurrency``
of them) and a circuit breaker (:mod:`router.circuit`), so a slow or dead peer holds up no other.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from kombu import Message, Queue
from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters.base import Destination
from router.circuit import CircuitBreaker, CircuitState
from router.config import KurierConfig
from router.journal import DeliveryOutcome, Journal, PlanOutcome, StageEvent, retry_at
from router.messages import dead_envelope, dead_letter, delivery_messages, read_deliveries, read_inbound
from router.metrics import Metrics
from router.pipeline import Pipeline, StageTimer
from router.queues import BatchConsumer, Broker, ConfirmingPublisher, OutMessage, Topology
from schemas.envelope import Envelope, EnvelopeStatus, utcnow
from schemas.errors import Permanent, Transient, redact_secrets

__all__ = ["DeliveryWorker", "InFlight", "ProcessWorker", "Worker", "delivery_workers", "destination_circuits"]

log = logging.getLogger("kurier.workers")

# Errors after which the batch is put back and tried again: the journal or the broker is unavailable.
_INFRA = (Transient, OperationalError, DBAPIError, ConnectionError, OSError, TimeoutError)


class Worker(threading.Thread):
    """Base loop; subclasses implement :meth:`handle`."""

    def __init__(self, name: str, broker: Broker, queues: Sequence[Queue], config: KurierConfig,
                 journal: Journal, metrics: Metrics, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.broker = broker
        self.queues = list(queues)
        self.config = config
        self.journal = journal
        self.metrics = metrics
        self.stop_event = stop
        self.prefetch = config.processing.prefetch  # messages the broker may hand this worker ahead

    def handle(self, batch: Sequence[Message]) -> list[OutMessage]:
        raise NotImplementedError

    def fetch(self, consumer: BatchConsumer) -> list[Message]:
        """The next batch (possibly empty, after ``batch_wait_ms``)."""
        proc = self.config.processing
        return consumer.fetch(proc.batch_size, proc.batch_wait_ms / 1000)

    def run(self) -> None:
        pause = 0.5
        while not self.stop_event.is_set():
            conn = None
            try:
                conn = self.broker.connect()
                consumer = BatchConsumer(conn, self.queues, prefetch=self.prefetch)
                publisher = ConfirmingPublisher(conn, self.broker.topology)
                while not self.stop_event.is_set():
                    batch = self.fetch(consumer)
                    if not batch:
                        continue
                    try:
                        out = self.handle(batch)
                        publisher.publish(out)
                    except Exception as exc:
                        if isinstance(exc, _INFRA):
                            log.warning("%s: batch of %d put back, will retry: %s: %s", self.name, len(batch),
                                        type(exc).__name__, redact_secrets((str(exc).splitlines() or [""])[0]))
                        else:  # a bug: keep the traceback, keep the messages, keep the worker
                            log.exception("%s: batch of %d failed unexpectedly; put back", self.name, len(batch))
                        consumer.requeue(batch)
                        self.stop_event.wait(pause)
                        pause = min(pause * 2, 30.0)
                        continue
                    consumer.ack(batch)
                    pause = 0.5
            except Exception as exc:
                log.warning("%s: broker connection lost (%s); reconnecting in %.1fs", self.name,
                            redact_secrets(str(exc)), pause)
                self.stop_event.wait(pause)
                pause = min(pause * 2, 30.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):  # the connection is already broken
                        conn.release()

    def _decode(self, batch: Sequence[Message], read: Any) -> tuple[list[Any], list[OutMessage]]:
        """Items of every readable message; a message that cannot be read goes whole to the dead letters.

        Its envelopes are not lost: the journal has them, and the sweeper re-queues what stays unfinished.
        """
        items: list[Any] = []
        dead: list[OutMessage] = []
        for message in batch:
            try:
                items.extend(read(message))
            except Exception as exc:
                log.error("%s: unreadable message sent to the dead-letter queue: %s", self.name, exc)
                dead.append(dead_letter(message, f"unreadable message: {exc}"))
        return items, dead


class ProcessWorker(Worker):
    """transform → sign → route for received envelopes; plans their deliveries."""

    def __init__(self, *args: Any, pipeline: Pipeline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline = pipeline
        self.signers = pipeline.signers()  # this worker's own: signer objects are not thread-safe

    def handle(self, batch: Sequence[Message]) -> list[OutMessage]:
        envs, out = self._decode(batch, read_inbound)
        statuses = self.journal.statuses(env.id for env in envs)
        timer = StageTimer({})
        plans: list[PlanOutcome] = []
        retries: list[PlanOutcome] = []  # the signer failed transiently: these alone wait and try again
        routed: dict[str, Envelope] = {}
        resend: list[str] = []
        seen: set[str] = set()
        for env in envs:
            status = statuses.get(env.id)
            if env.id in seen:
                continue  # queued twice (a resend raced its first copy): one decision is enough
            seen.add(env.id)
            if status is None:
                # Only Kurier queues envelopes, and only after journaling them: this one is foreign (or its
                # journal was lost). Not ours to process, not ours to drop: an operator decides.
                log.error("%s: envelope %s is not in the journal; sent to the dead-letter queue", self.name, env.id)
                out.append(dead_envelope(env, f"envelope {env.id} is not in the journal"))
            elif status == EnvelopeStatus.RECEIVED:
                try:
                    plan = self.pipeline.process(env, timer, self.signers)
                except Transient:
                    raise
                except Exception as exc:  # a bug must not block the queue: journal it, keep the document
                    log.exception("%s: processing envelope %s failed", self.name, env.id)
                    plan = PlanOutcome(env.id, EnvelopeStatus.FAILED,
                                       [StageEvent("process", "failed", f"internal error: {exc!r}")],
                                       error_code="internal", error=f"internal error: {exc!r}")
                if plan.status == EnvelopeStatus.RECEIVED:
                    retries.append(plan)
                    continue
                plans.append(plan)
                if plan.status == EnvelopeStatus.ROUTED:
                    routed[env.id] = Envelope.from_json(plan.data) if plan.data else env
            elif status == EnvelopeStatus.ROUTED:
                resend.append(env.id)  # redelivered after a crash: make sure its deliveries are queued
        self.journal.record_plans(plans)
        if retries:
            self._retry_later(retries)
        deliveries = [(f"{p.envelope_id}:{dest}", dest, routed[p.envelope_id])
                      for p in plans for dest in p.destinations]
        if resend:
            pending = self.journal.pending_deliveries(resend)
            stored = self.journal.load({eid for _, eid, _ in pending})
            deliveries += [(did, dest, stored[eid]) for did, eid, dest in pending]
        out += self._delivery_messages(deliveries)
        self.metrics.routed(sum(1 for p in plans if p.status == EnvelopeStatus.ROUTED))
        for stage, seconds in timer.seconds.items():
            self.metrics.observe_stage(stage, seconds)
        return out

    def _delivery_messages(self, deliveries: Sequence[tuple[str, str, Envelope]]) -> list[OutMessage]:
        """A destination's deliveries in at least as many messages as it has workers, so they all get some."""
        size = self.config.processing.batch_size
        by_destination: dict[str, list[tuple[str, str, Envelope]]] = {}
        for item in deliveries:
            by_destination.setdefault(item[1], []).append(item)
        out: list[OutMessage] = []
        for dest, items in by_destination.items():
            workers = self.config.connections[dest].delivery.concurrency if dest in self.config.connections else 1
            out += delivery_messages(items, min(size, max(1, -(-len(items) // workers))))
        return out

    def _retry_later(self, retries: Sequence[PlanOutcome]) -> None:
        retry = self.config.retry
        done = self.journal.retry_received(retries, stage="sign", max_attempts=retry.max_attempts,
                                           first_delay=retry.first_delay_seconds, max_delay=retry.max_delay_seconds,
                                           grace=self.config.processing.recovery_grace_seconds)
        for plan in done:
            if plan.status == EnvelopeStatus.FAILED:  # an operator must act; a retry still to come needs no one
                log.warning("%s: envelope %s failed at the sign stage: %s", self.name, plan.envelope_id, plan.error)


class DeliveryWorker(Worker):
    """Delivers to one destination from its queue, idempotently by delivery id; schedules retries in the journal.

    Its circuit breaker decides what is attempted. A delivery not attempted because the circuit is open
    is rescheduled in the journal with its attempt count unchanged (the sweeper queues it again later);
    a delivery that was attempted records its own error, and counts towards ``retry.max_attempts``.
    """

    def __init__(self, *args: Any, destination: Destination, circuit: CircuitBreaker,
                 in_flight: InFlight | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.destination = destination
        self.circuit = circuit
        self.in_flight = in_flight or InFlight()
        self.dest = circuit.destination  # the connection's name: its queue, its journal rows, its metrics
        self.shared = self.config.connections[self.dest].delivery.concurrency > 1
        if self.shared:
            # Several workers share the queue: each holds one message at a time, so a worker stuck on a
            # slow delivery keeps nothing from the others.
            self.prefetch = 1

    def fetch(self, consumer: BatchConsumer) -> list[Message]:
        if self.shared:
            batch = consumer.fetch(1, self.config.processing.batch_wait_ms / 1000)  # one message, however many items
        else:
            batch = super().fetch(consumer)
        self.circuit.tick()  # an outage that goes on is told at intervals, even when nothing arrives
        return batch

    def _attempt(self, env: Envelope, key: str) -> str:
        retry = self.config.retry
        for attempt in Retrying(stop=stop_after_attempt(retry.in_process_attempts),
                                wait=wait_exponential(multiplier=0.1, max=1.0),
                                retry=retry_if_exception_type(Transient), reraise=True):
            with attempt:
                return self.destination.deliver(env, key)
        raise AssertionError("unreachable")  # pragma: no cover

    def handle(self, batch: Sequence[Message]) -> list[OutMessage]:
        name = self.dest
        items, out = self._decode(batch, read_deliveries)
        states = self.journal.delivery_statuses(did for did, _, _ in items)
        todo: list[tuple[str, Envelope, int]] = []
        seen: set[str] = set()
        for did, dest, env in items:
            state = states.get(did)
            if state is None or dest != name:
                why = "is not in the journal" if state is None else f"is for {dest!r}, not for {name!r}"
                log.error("%s: delivery %s %s; sent to the dead-letter queue", self.name, did, why)
                out.append(dead_envelope(env, f"delivery {did} {why}", did))
                continue
            if did in seen:
                continue  # queued twice: one attempt per batch
            seen.add(did)
            status, attempts = state
            if status in ("delivered", "failed"):
                continue  # done before (a redelivered message): delivering again would duplicate
            todo.append((did, env, attempts))
        if self.circuit.state != CircuitState.CLOSED:
            # The probe is the least-tried delivery: a long outage spreads its probes over the documents
            # waiting instead of wearing out the attempts of one.
            todo.sort(key=lambda item: item[2])
        # A copy re-queued while a slow delivery was still going on is another worker's: its outcome counts.
        mine = self.in_flight.claim([did for did, _, _ in todo])
        outcomes: list[DeliveryOutcome] = []
        deferred: list[str] = []  # not attempted: the circuit is open
        started = time.perf_counter()
        try:
            for did, env, attempts in todo:
                if did not in mine:
                    continue
                if self.circuit.allow():
                    outcomes.append(self._deliver(did, env, attempts))
                else:
                    deferred.append(did)
            self.journal.record_deliveries(outcomes)
        finally:
            self.in_flight.release(mine)
        if deferred:
            # Untried, so no attempt is counted: the journal keeps them, the sweeper queues them again later.
            self.journal.touch(delivery_ids=deferred, hold=self._hold)
            self.metrics.deferred(name, len(deferred))
        for o in outcomes:
            self.metrics.delivery(o.destination, o.status)
        if outcomes:
            self.metrics.observe_stage("deliver", time.perf_counter() - started)
        return out

    def _deliver(self, did: str, env: Envelope, attempts: int) -> DeliveryOutcome:
        """One attempt (with its quick in-process retries); the outcome carries this document's own error."""
        try:
            receipt = self._attempt(env, did)
        except Permanent as exc:
            self.circuit.record_success()  # the destination answered: it refused this document for good
            return DeliveryOutcome(did, env.id, self.dest, "failed", f"[{exc.code}] {exc}")
        except Exception as exc:  # Transient, or an adapter bug: try again later, never drop
            if not isinstance(exc, Transient):
                log.exception("%s: destination %s failed unexpectedly on %s", self.name, self.dest, did)
            error = f"{type(exc).__name__}: {exc}"
            self.circuit.record_failure(error)
            # While the destination is known to be down, a tried delivery waits at least as long as the untried
            # ones, and longer the more it was tried: with its own quicker back-off it would come back first and
            # be the probe again and again, wearing out its attempts while others wait untried.
            later = None if self.circuit.state == CircuitState.CLOSED else \
                utcnow() + timedelta(seconds=self._hold * (attempts + 1))
            return self._retry_or_fail(did, env.id, attempts, error, later)
        self.circuit.record_success()
        return DeliveryOutcome(did, env.id, self.dest, "delivered", receipt)

    @property
    def _hold(self) -> float:
        """How long a delivery put aside while the circuit is open waits: the sweeper's grace (pending ones)."""
        proc = self.config.processing
        return max(proc.recovery_grace_seconds, proc.sweep_interval_seconds)

    def _retry_or_fail(self, did: str, eid: str, attempts: int, error: str,
                       not_before: datetime | None = None) -> DeliveryOutcome:
        retry = self.config.retry
        dest = self.dest
        tried = attempts + 1
        if tried >= retry.max_attempts:
            return DeliveryOutcome(did, eid, dest, "failed", f"gave up after {tried} attempts: {error}")
        when = retry_at(tried, retry.first_delay_seconds, retry.max_delay_seconds)
        when = max(when, not_before) if not_before else when
        return DeliveryOutcome(did, eid, dest, "retry", f"attempt {tried} failed: {error}; next try {when:%H:%M:%S}",
                               next_try=when)


class InFlight:
    """The deliveries a destination's workers in this process are busy with."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` no other worker holds, now held by the caller."""
        with self._lock:
            mine = set(ids) - self._ids
            self._ids |= mine
            return mine

    def release(self, ids: set[str]) -> None:
        with self._lock:
            self._ids -= ids


def delivery_workers(broker: Broker, topology: Topology, destinations: Mapping[str, Destination],
                     circuits: Mapping[str, CircuitBreaker], **common: Any) -> list[DeliveryWorker]:
    """Each destination's own workers on its own queue, as many as its ``delivery.concurrency``."""
    config: KurierConfig = common["config"]
    workers: list[DeliveryWorker] = []
    for name, destination in sorted(destinations.items()):
        count, in_flight = config.connections[name].delivery.concurrency, InFlight()
        for i in range(count):
            workers.append(DeliveryWorker(f"deliver-{name}" + (f"-{i + 1}" if count > 1 else ""), broker,
                                          [topology.deliveries[name]], destination=destination,
                                          circuit=circuits[name], in_flight=in_flight, **common))
    return workers


def destination_circuits(config: KurierConfig, destinations: Sequence[str] | Mapping[str, Any],
                         journal: Journal) -> dict[str, CircuitBreaker]:
    """A circuit breaker per destination, set up by its ``delivery`` settings; its outage lines count what waits."""
    circuits: dict[str, CircuitBreaker] = {}
    for name in destinations:
        delivery = config.connections[name].delivery
        circuits[name] = CircuitBreaker(name, failure_threshold=delivery.failure_threshold,
                                        open_seconds=delivery.open_seconds, waiting=partial(_waiting, journal, name))
    return circuits


def _waiting(journal: Journal, destination: str) -> int:
    counts = journal.delivery_counts()
    return counts.get((destination, "pending"), 0) + counts.get((destination, "retry"), 0)
