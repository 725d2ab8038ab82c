"""Delivery: each destination's own workers on its own queue, with its own circuit breaker.

A destination has ``connections.<name>.delivery.concurrency`` workers on ``kurier.deliver.<name>``, so
a slow or dead peer holds up no other destination's deliveries, and a circuit breaker
(:mod:`router.circuit`) that leaves it alone while it is down: the deliveries not attempted then are
rescheduled in the journal with their attempt counts unchanged, and a probe now and then tells when
it is back. Every attempted delivery records its own outcome and error. Deliveries are idempotent by
delivery id (``<envelope id>:<destination>``), and journaled before their message is acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from kombu import Message
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from adapters.base import Destination
from router.circuit import CircuitBreaker, CircuitState
from router.config import KurierConfig
from router.journal import DeliveryOutcome, Journal, retry_at
from router.messages import dead_envelope, read_deliveries
from router.queues import BatchConsumer, Broker, OutMessage, Topology
from router.workers import Worker
from schemas.envelope import Envelope, utcnow
from schemas.errors import Permanent, Transient

__all__ = ["DeliveryWorker", "InFlight", "delivery_workers", "destination_circuits"]

log = logging.getLogger("kurier.workers")


class DeliveryWorker(Worker):
    """Delivers to one destination from its queue, idempotently by delivery id; schedules retries in the journal.

    Its circuit breaker decides what is attempted. A delivery not attempted because the circuit is open
    is rescheduled in the journal with its attempt count unchanged (the sweeper queues it again later);
    a delivery that was attempted records its own error, and counts towards ``retry.max_attempts`` (the
    connection's own ``delivery.retry`` when it has one).
    """

    def __init__(self, *args: Any, destination: Destination, circuit: CircuitBreaker,
                 in_flight: InFlight | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.destination = destination
        self.circuit = circuit
        self.in_flight = in_flight or InFlight()
        self.dest = circuit.destination  # the connection's name: its queue, its journal rows, its metrics
        own = self.config.connections[self.dest].delivery.retry if self.dest in self.config.connections else None
        self.retry = own or self.config.retry
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
        retry = self.retry
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
        alone: set[str] = set()  # deliveries that are their envelope's only one
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
            if state.status in ("delivered", "failed"):
                continue  # done before (a redelivered message): delivering again would duplicate
            todo.append((did, env, state.attempts))
            if state.siblings == 1:
                alone.add(did)
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
                    outcome = self._deliver(did, env, attempts)
                    outcomes.append(replace(outcome, only=True) if did in alone else outcome)
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
            return DeliveryOutcome(did, env.id, self.dest, "failed", f"[{exc.code}] {exc}", source=env.source)
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
            return self._retry_or_fail(did, env.id, attempts, error, later, source=env.source)
        self.circuit.record_success()
        return DeliveryOutcome(did, env.id, self.dest, "delivered", receipt, source=env.source)

    @property
    def _hold(self) -> float:
        """How long a delivery put aside while the circuit is open waits: the sweeper's grace (pending ones)."""
        proc = self.config.processing
        return max(proc.recovery_grace_seconds, proc.sweep_interval_seconds)

    def _retry_or_fail(self, did: str, eid: str, attempts: int, error: str,
                       not_before: datetime | None = None, *, source: str = "") -> DeliveryOutcome:
        retry = self.retry
        dest = self.dest
        tried = attempts + 1
        if tried >= retry.max_attempts:
            return DeliveryOutcome(did, eid, dest, "failed", f"gave up after {tried} attempts: {error}", source=source)
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
