"""Workers: a thread each, one connection each, handling batches from their queues.

The loop is the same for every worker: fetch a batch → handle it (journal committed inside) →
publish what it produced, confirmed → acknowledge the batch. A failure of the database or the broker
puts the batch back (nothing acknowledged) and the worker tries again after a pause; a message that
cannot be read at all goes to the dead-letter queue with the reason. One bad message never stops a
worker, and no message is acknowledged before its outcome is in the journal.

The processing workers are here; each destination's delivery workers, with their circuit breaker,
are in :mod:`router.delivery`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

from kombu import Message, Queue

from router.config import KurierConfig
from router.journal import Journal, PlanOutcome, StageEvent
from router.messages import dead_envelope, dead_letter, delivery_messages, read_inbound
from router.metrics import Metrics
from router.pipeline import Pipeline, StageTimer
from router.queues import BatchConsumer, Broker, ConfirmingPublisher, OutMessage
from schemas.envelope import Envelope, EnvelopeStatus
from schemas.errors import Permanent, Transient, redact_secrets
from schemas.outage import Outage

__all__ = ["ProcessWorker", "Worker"]

log = logging.getLogger("kurier.workers")

# Errors after which the batch is put back and tried again: the journal or the broker is unavailable (both
# translate their libraries' errors into Transient at their edge), or the disk of the payload store.
_INFRA = (Transient, ConnectionError, OSError, TimeoutError)


def _documents(batch: Sequence[Message]) -> int:
    """How many documents a batch carries (a message says how many in its ``count`` header)."""
    counts = ((m.headers or {}).get("count", 1) for m in batch)
    return sum(c if isinstance(c, int) and c > 0 else 1 for c in counts)


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
        # One outage per worker: the journal or the broker down is told when it starts, every 30 s while it
        # lasts, and when it ends; not once per batch put back.
        outage = Outage(f"worker {self.name}", log)
        while not self.stop_event.is_set():
            conn = None
            try:
                conn = self.broker.connect()
                consumer = BatchConsumer(conn, self.queues, prefetch=self.prefetch)
                publisher = ConfirmingPublisher(conn, self.broker.topology)
                outage.recovered()
                while not self.stop_event.is_set():
                    batch = self.fetch(consumer)
                    if not batch:
                        continue
                    try:
                        self._run_batch(batch, consumer, publisher)
                    except Exception as exc:
                        if isinstance(exc, _INFRA):
                            reason = redact_secrets((str(exc).splitlines() or [type(exc).__name__])[0])
                            outage.failed(f"{reason}; its batches are put back and tried again",
                                          waiting=_documents(batch))
                            log.debug("%s: batch of %d put back: %s", self.name, len(batch), reason)
                        else:  # a bug: keep the traceback, keep the messages, keep the worker
                            log.exception("%s: batch of %d failed unexpectedly; put back", self.name, len(batch))
                        consumer.requeue(batch)
                        self.stop_event.wait(pause)
                        pause = min(pause * 2, 30.0)
                        continue
                    outage.recovered()
                    pause = 0.5
            except Exception as exc:
                outage.failed(f"{redact_secrets(str(exc))}; reconnecting")
                log.debug("%s: broker connection lost (%s); reconnecting in %.1fs", self.name,
                          redact_secrets(str(exc)), pause)
                self.stop_event.wait(pause)
                pause = min(pause * 2, 30.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):  # the connection is already broken
                        conn.release()

    def _run_batch(self, batch: Sequence[Message], consumer: BatchConsumer, publisher: ConfirmingPublisher) -> None:
        """Handle, publish, acknowledge; a permanent error sets aside only the message(s) it belongs to."""
        try:
            out = self.handle(batch)
        except Permanent as exc:
            if len(batch) > 1:  # which message? each alone (in delivery order, so acks stay in order)
                for message in batch:
                    self._run_batch([message], consumer, publisher)
                return
            # Retrying cannot help (the journal refuses what this message asks of it): an operator decides.
            log.error("%s: message sent to the dead-letter queue: [%s] %s", self.name, exc.code, exc)
            out = [dead_letter(batch[0], f"[{exc.code}] {exc}")]
        publisher.publish(out)
        consumer.ack(batch)

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
        self.check = pipeline.incoming_check()

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
                    plan = self.pipeline.process(env, timer, self.signers, self.check)
                except Transient:
                    raise
                except Exception as exc:  # a bug must not block the queue: journal it, keep the document
                    log.exception("%s: processing envelope %s failed", self.name, env.id)
                    plan = PlanOutcome(env.id, EnvelopeStatus.FAILED,
                                       [StageEvent("process", "failed", f"internal error: {exc!r}")],
                                       error_code="internal", error=f"internal error: {exc!r}", source=env.source)
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
