"""Stage and delivery writes: what the processing and delivery workers decided, one transaction per batch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select, update

from router.journal.base import JournalBase
from router.journal.columns import fit_text
from router.journal.db import bulk_insert, chunks, one_of
from router.journal.errors import JOURNAL_REFUSED, refused_by_database, translate
from router.journal.records import (
    DeliveryOutcome,
    DeliveryState,
    PlanOutcome,
    StageEvent,
)
from router.journal.statuses import delivery_status_rows, plan_status_rows
from router.journal.tables import deliveries, envelope_data, envelopes, events
from schemas.envelope import EnvelopeStatus, utcnow

__all__ = ["StageJournal"]


class StageJournal(JournalBase):
    """Plans and delivery outcomes, batched."""

    # -- processing -----------------------------------------------------------------------------
    def statuses(self, envelope_ids: Iterable[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        with self.reader.connect() as conn:
            for chunk in chunks(sorted(set(envelope_ids)), 500):
                query = select(envelopes.c.id, envelopes.c.status).where(one_of(conn, envelopes.c.id, chunk))
                for row in conn.execute(query):
                    result[row.id] = row.status
        return result

    def record_plans(self, plans: Sequence[PlanOutcome]) -> None:
        """Commit a processing batch: stage events, planned deliveries and new statuses, all or nothing.

        Should the database refuse the batch for good (e.g. an envelope a transform made larger than MySQL's
        TEXT), each plan is committed alone, and one it still refuses is journaled as failed with the
        database's reason: one document must neither hold up the others nor come back for ever.
        """
        if not plans:
            return
        try:
            self._record_plans(plans)
        except Exception as exc:
            if not refused_by_database(exc):
                raise
            for plan in plans:
                try:
                    self._record_plans([plan])
                except Exception as one:
                    if not refused_by_database(one):
                        raise
                    reason = str(translate(one, "record_plans"))
                    self._record_plans([PlanOutcome(plan.envelope_id, EnvelopeStatus.FAILED,
                                                    [*plan.events, StageEvent("journal", "failed", reason)],
                                                    error_code=JOURNAL_REFUSED, error=reason)])

    def _record_plans(self, plans: Sequence[PlanOutcome]) -> None:
        now = utcnow()
        delivery_rows = list({
            f"{p.envelope_id}:{d}": {"id": f"{p.envelope_id}:{d}", "envelope_id": p.envelope_id, "destination": d,
                                     "status": "pending",
             "attempts": 0, "updated_at": now}
            for p in plans for d in p.destinations
        }.values())
        with self.engine.begin() as conn:
            missing: list[dict[str, Any]] = []
            if delivery_rows:
                have: set[str] = set()
                for chunk in chunks([r["id"] for r in delivery_rows], 500):
                    found = select(deliveries.c.id).where(one_of(conn, deliveries.c.id, chunk))
                    have.update(conn.execute(found).scalars())
                missing = [r for r in delivery_rows if r["id"] not in have]
                if missing:
                    bulk_insert(conn, deliveries, missing)
            plan_status_rows(conn, plans, missing, now, self.actor)
            event_rows = [row for p in plans for row in self._event_rows(p.envelope_id, p.events, now)]
            if event_rows:
                bulk_insert(conn, events, event_rows)
            by_status: dict[tuple[str, str | None, str | None, str | None], list[str]] = {}
            for p in plans:
                if p.data is not None:
                    conn.execute(update(envelope_data).where(envelope_data.c.envelope_id == p.envelope_id)
                                 .values(data=p.data))
                by_status.setdefault((p.status.value, p.error_code, fit_text(p.error), None), []).append(p.envelope_id)
            for (status, code, error, _), ids in by_status.items():
                conn.execute(
                    update(envelopes)
                    .where(one_of(conn, envelopes.c.id, ids), envelopes.c.status == EnvelopeStatus.RECEIVED.value)
                    .values(status=status, error_code=code, error=error, updated_at=now)
                )

    def pending_deliveries(self, envelope_ids: Iterable[str]) -> list[tuple[str, str, str]]:
        """(delivery id, envelope id, destination) still to do for these envelopes."""
        out: list[tuple[str, str, str]] = []
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(envelope_ids)), 500):
                rows = conn.execute(
                    select(deliveries.c.id, deliveries.c.envelope_id, deliveries.c.destination).where(
                        one_of(conn, deliveries.c.envelope_id, chunk), deliveries.c.status.in_(("pending", "retry"))
                    )
                )
                out.extend((r.id, r.envelope_id, r.destination) for r in rows)
        return out

    # -- delivery -------------------------------------------------------------------------------
    def delivery_statuses(self, delivery_ids: Iterable[str]) -> dict[str, DeliveryState]:
        """The journal's state of these deliveries, and how many deliveries each one's envelope has."""
        wanted = set(delivery_ids)
        # Looked up by envelope (the delivery id is "<envelope id>:<destination>"), which also counts each
        # envelope's deliveries: one that is its envelope's only delivery settles it without a look-up.
        envelope_ids = sorted({did.rpartition(":")[0] for did in wanted})
        rows: list[Any] = []
        with self.reader.connect() as conn:
            for chunk in chunks(envelope_ids, 500):
                rows += conn.execute(
                    select(deliveries.c.id, deliveries.c.envelope_id, deliveries.c.status, deliveries.c.attempts)
                    .where(one_of(conn, deliveries.c.envelope_id, chunk)))
        fanout: dict[str, int] = {}
        for r in rows:
            fanout[r.envelope_id] = fanout.get(r.envelope_id, 0) + 1
        return {r.id: DeliveryState(r.status, r.attempts, fanout[r.envelope_id]) for r in rows if r.id in wanted}

    def record_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Commit a delivery batch, then settle envelopes whose deliveries are all done."""
        if not outcomes:
            return
        now = utcnow()
        # An envelope whose only delivery this is settles with its outcome; the others need a look at their
        # siblings, which another destination's worker may be recording at the same moment.
        alone = {o.envelope_id: o.status for o in outcomes if o.only}
        shared = sorted({o.envelope_id for o in outcomes if not o.only})
        with self.engine.begin() as conn:
            # Each worker recording a shared envelope's deliveries locks its row first (in id order, so no
            # deadlock), so the last of them sees the others' outcomes and settles it. (SQLite writes one
            # transaction at a time anyway.)
            for chunk in chunks(shared, 500):
                conn.execute(select(envelopes.c.id).where(one_of(conn, envelopes.c.id, chunk))
                             .order_by(envelopes.c.id).with_for_update())
            delivered = [o.delivery_id for o in outcomes if o.status == "delivered"]
            for chunk in chunks(delivered, 500):
                conn.execute(
                    update(deliveries).where(one_of(conn, deliveries.c.id, chunk))
                    .values(status="delivered", attempts=deliveries.c.attempts + 1, updated_at=now, next_try=None)
                )
            for o in outcomes:
                if o.status == "delivered":
                    continue
                conn.execute(
                    update(deliveries).where(deliveries.c.id == o.delivery_id, deliveries.c.status != "delivered")
                    .values(status=o.status, attempts=deliveries.c.attempts + 1, last_error=fit_text(o.detail),
                            next_try=o.next_try, updated_at=now)
                )
            bulk_insert(conn, events, [
                {"envelope_id": o.envelope_id, "at": now, "stage": "deliver", "outcome": o.status,
                 "actor": self.actor, "destination": o.destination, "detail": fit_text(o.detail)}
                for o in outcomes
            ])
            # the source is told: delivered, or failed with the reason (retries are no news)
            delivery_status_rows(conn, outcomes, now, self.actor)
            # Settle the envelopes none of whose deliveries is still to do: failed if one of them failed for
            # good, else delivered. Decided here from one look-up by the indexed envelope id: an EXISTS per
            # row made PostgreSQL spend more on this statement than on all the others of the batch.
            states: dict[str, set[str]] = {eid: {status} for eid, status in alone.items()}
            for chunk in chunks(shared, 500):
                for row in conn.execute(select(deliveries.c.envelope_id, deliveries.c.status)
                                        .where(one_of(conn, deliveries.c.envelope_id, chunk))):
                    states.setdefault(row.envelope_id, set()).add(row.status)
            settled = [eid for eid, found in states.items() if not found & {"pending", "retry"}]
            failed = [eid for eid in settled if "failed" in states[eid]]
            delivered = [eid for eid in settled if "failed" not in states[eid]]
            for ids, values in (
                (delivered, {"status": EnvelopeStatus.DELIVERED.value}),
                (failed, {"status": EnvelopeStatus.FAILED.value, "error_code": "delivery-failed",
                          "error": "a delivery failed permanently; see the delivery events"}),
            ):
                for chunk in chunks(ids, 500):
                    conn.execute(update(envelopes)
                                 .where(one_of(conn, envelopes.c.id, chunk),
                                        envelopes.c.status == EnvelopeStatus.ROUTED.value)
                                 .values(**values, updated_at=now))
