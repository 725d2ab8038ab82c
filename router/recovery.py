"""The sweeper: re-queues from the journal what the queues may have lost, and what is due for retry.

The journal is the source of truth. An envelope journaled as received but not processed within the
grace period, or a delivery still pending, has lost its queue message (a crash between journal commit
and publish, or the embedded transport's memory gone with the process): it is queued again. Stages
are idempotent, so a message queued twice costs a look-up, never a duplicate delivery.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from router.config import KurierConfig
from router.journal import Journal
from router.messages import delivery_messages, inbound_messages
from router.metrics import Metrics
from router.queues import Broker, ConfirmingPublisher, OutMessage
from schemas.envelope import utcnow
from schemas.errors import KurierError, redact_secrets
from schemas.outage import Outage

__all__ = ["Sweeper"]

log = logging.getLogger("kurier.recovery")


class Sweeper(threading.Thread):
    def __init__(self, journal: Journal, broker: Broker, config: KurierConfig, stop: threading.Event,
                 metrics: Metrics | None = None) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.metrics = metrics
        self.journal = journal
        self.broker = broker
        self.config = config
        self.stop_event = stop
        self.outage = Outage("the sweeper (re-queueing unfinished work from the journal)", log)
        self._waiting: int | None = None  # what the last sweep found to re-queue, while it could not

    def sweep(self, grace: float, now: datetime | None = None) -> int:
        """Re-queue stale and due work; return how many envelopes and deliveries were re-queued.

        Work re-queued by this sweep is touched after ``now``, so a repeated call with the same ``now``
        moves on through a large backlog instead of queueing the same items again.
        """
        now = now or utcnow()
        cutoff = now - timedelta(seconds=grace)
        received = self.journal.stale_received(cutoff)
        due = self.journal.due_deliveries(now, cutoff)
        if not received and not due:
            return 0
        self._waiting = len(received) + len(due)
        envs = self.journal.load([*received, *(eid for _, eid, _ in due)])
        per_message = self.config.processing.batch_size
        out: list[OutMessage] = inbound_messages([envs[eid] for eid in received if eid in envs], per_message)
        out += delivery_messages([(did, dest, envs[eid]) for did, eid, dest in due if eid in envs], per_message)
        with self.broker.connect() as conn:
            ConfirmingPublisher(conn, self.broker.topology).publish(out)
        hold = max(self.config.processing.recovery_grace_seconds, self.config.processing.sweep_interval_seconds)
        self.journal.touch(received, [did for did, _, _ in due], hold=hold)
        log.info("re-queued %d received envelope(s) and %d due deliveries", len(received), len(due))
        return len(received) + len(due)

    def run(self) -> None:
        proc = self.config.processing
        # The embedded transport forgets everything in a crash: at start, every unfinished envelope
        # is re-queued at once. RabbitMQ kept its messages; only the stale ones need help.
        grace = proc.recovery_grace_seconds if self.broker.durable else 0.0
        while not self.stop_event.is_set():
            try:
                started = utcnow()
                self._waiting = None
                while self.sweep(grace, started) >= 1000 and not self.stop_event.is_set():
                    pass  # a large backlog: keep going until it is all queued
                grace = proc.recovery_grace_seconds
                if self.metrics is not None:
                    # Queue depths for /metrics: what operators watch to see a destination falling behind.
                    for queue, depth in self.broker.depths().items():
                        self.metrics.set_queue_depth(queue, depth)
            except Exception as exc:
                # The journal or the broker is down: said once (and every 30 s), not at every sweep.
                if not isinstance(exc, KurierError) and not self.outage.down:  # a bug: its traceback, once
                    log.exception("sweep failed unexpectedly, trying again in %.0fs", proc.sweep_interval_seconds)
                self.outage.failed(f"{redact_secrets(str(exc))}; trying again every "
                                   f"{proc.sweep_interval_seconds:g}s", waiting=self._waiting)
            else:
                self.outage.recovered()
            self.stop_event.wait(proc.sweep_interval_seconds)
