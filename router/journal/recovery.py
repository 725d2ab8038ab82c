"""Recovery queries: what the sweeper re-queues after a crash or when a retry is due."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import and_, or_, select, update

from router.journal.base import JournalBase, retry_at
from router.journal.db import bulk_insert, chunks
from router.journal.records import PlanOutcome, StageEvent
from router.journal.tables import deliveries, envelope_data, envelopes, events
from schemas.envelope import Envelope, EnvelopeStatus, utcnow

__all__ = ["RecoveryJournal"]

log = logging.getLogger("kurier.journal")


class RecoveryJournal(JournalBase):
    """Stale and due work, and the envelopes to queue again."""

    # -- recovery -------------------------------------------------------------------------------
    def stale_received(self, older_than: datetime, limit: int = 1000) -> list[str]:
        """Envelopes received but not processed since ``older_than``: their queue message may be lost."""
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(envelopes.c.id).where(
                    envelopes.c.status == EnvelopeStatus.RECEIVED.value, envelopes.c.updated_at <= older_than
                ).order_by(envelopes.c.updated_at).limit(limit)
            ).scalars())

    def due_deliveries(self, now: datetime, stale_before: datetime, limit: int = 1000) -> list[tuple[str, str, str]]:
        """Deliveries whose retry time has come, or pending ones untouched since ``stale_before``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.id, deliveries.c.envelope_id, deliveries.c.destination).where(or_(
                    and_(deliveries.c.status == "retry", deliveries.c.next_try <= now),
                    and_(deliveries.c.status == "pending", deliveries.c.updated_at <= stale_before),
                )).order_by(deliveries.c.updated_at).limit(limit)
            )
            return [(r.id, r.envelope_id, r.destination) for r in rows]

    def touch(self, envelope_ids: Sequence[str] = (), delivery_ids: Sequence[str] = (), *, hold: float = 0.0) -> None:
        """Mark re-queued work as fresh, so the sweeps in the next ``hold`` seconds leave it alone."""
        now = utcnow()
        with self.engine.begin() as conn:
            for chunk in chunks(list(envelope_ids), 500):
                conn.execute(update(envelopes).where(envelopes.c.id.in_(chunk)).values(updated_at=now))
            for chunk in chunks(list(delivery_ids), 500):
                conn.execute(
                    update(deliveries).where(deliveries.c.id.in_(chunk), deliveries.c.status == "pending")
                    .values(updated_at=now)
                )
                conn.execute(
                    update(deliveries).where(deliveries.c.id.in_(chunk), deliveries.c.status == "retry")
                    .values(next_try=now + timedelta(seconds=hold))
                )

    def load(self, envelope_ids: Iterable[str]) -> dict[str, Envelope]:
        """The journaled envelopes; one that no longer reads as an envelope is left out, and said so."""
        result: dict[str, Envelope] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(envelope_ids)), 500):
                rows = conn.execute(select(envelope_data.c.envelope_id, envelope_data.c.data)
                                    .where(envelope_data.c.envelope_id.in_(chunk)))
                for row in rows:
                    try:
                        result[row.envelope_id] = Envelope.from_json(row.data)
                    except ValidationError as exc:
                        # Journaled before a limit was added (SQLite kept a 205-character kind): one such
                        # envelope must not stop the sweeper re-queueing all the others.
                        first = exc.errors()[0]
                        log.error("envelope %s in the journal is not a valid envelope any more (%s: %s); left for "
                                  "an operator", row.envelope_id, ".".join(map(str, first["loc"])), first["msg"])
        return result

    def retry_received(self, plans: Sequence[PlanOutcome], *, stage: str, max_attempts: int, first_delay: float,
                       max_delay: float, grace: float) -> list[PlanOutcome]:
        """Journal a transient failure of ``stage`` for received envelopes, and when the sweeper may re-queue each.

        Each plan ends with its ``stage`` ``retry`` event (the envelope's own error). The n-th retry is due
        after the journal's back-off (:func:`retry_at`); the try that reaches ``max_attempts`` fails the
        envelope for an operator instead. Tries are the envelope's ``retry`` events of ``stage`` since an
        operator last re-opened it. The sweeper re-queues a received envelope ``grace`` seconds after its
        ``updated_at``, so that is set to the retry time less ``grace``. Returns what was journaled.
        """
        if not plans:
            return []
        now = utcnow()
        ids = [p.envelope_id for p in plans]
        tries = dict.fromkeys(ids, 1)
        with self.engine.begin() as conn:
            for chunk in chunks(sorted(set(ids)), 500):
                rows = conn.execute(
                    select(events.c.envelope_id, events.c.stage).where(
                        events.c.envelope_id.in_(chunk), events.c.outcome == "retry",
                        events.c.stage.in_((stage, "operator")))
                    .order_by(events.c.id)
                )
                for row in rows:  # an operator's retry starts the count again
                    tries[row.envelope_id] = 1 if row.stage == "operator" else tries[row.envelope_id] + 1
            done: list[PlanOutcome] = []
            for plan in plans:
                *before, last = plan.events
                n, error = tries[plan.envelope_id], last.detail or plan.error or "no reason given"
                if n >= max_attempts:
                    final = StageEvent(stage, "failed", f"gave up after {n} attempts: {error}")
                    done.append(replace(plan, status=EnvelopeStatus.FAILED, events=[*before, final],
                                        error=f"gave up after {n} attempts: {plan.error or error}"))
                    conn.execute(update(envelopes).where(envelopes.c.id == plan.envelope_id,
                                                         envelopes.c.status == EnvelopeStatus.RECEIVED.value)
                                 .values(status=EnvelopeStatus.FAILED.value, error_code=plan.error_code,
                                         error=done[-1].error, updated_at=now))
                    continue
                when = retry_at(n, first_delay, max_delay)
                final = StageEvent(stage, "retry", f"attempt {n} failed: {error}; next try {when:%H:%M:%S}")
                done.append(replace(plan, events=[*before, final]))
                conn.execute(update(envelopes).where(envelopes.c.id == plan.envelope_id,
                                                     envelopes.c.status == EnvelopeStatus.RECEIVED.value)
                             .values(updated_at=when - timedelta(seconds=grace)))
            bulk_insert(conn, events, [row for p in done for row in self._event_rows(p.envelope_id, p.events, now)])
        return done
