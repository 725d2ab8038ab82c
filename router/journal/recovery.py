"""Recovery queries: what the sweeper re-queues after a crash or when a retry is due."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import and_, or_, select, update

from router.journal.base import JournalBase
from router.journal.db import chunks
from router.journal.tables import deliveries, envelope_data, envelopes
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

