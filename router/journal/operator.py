"""Operator queries and actions: search, one document's story, counts, an operator's retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import func, or_, select, update

from router.journal.base import JournalBase
from router.journal.db import bulk_insert
from router.journal.records import (
    SUMMARY_COLUMNS,
    DeliveryRecord,
    EventRecord,
    MessageDetail,
    MessageSummary,
    aware,
    summary,
    summary_from_mapping,
)
from router.journal.tables import deliveries, envelope_data, envelopes, events
from schemas.envelope import EnvelopeStatus, utcnow

__all__ = ["OperatorJournal"]


class OperatorJournal(JournalBase):
    """What the CLI, the ops API and the dashboard read, and the actions operators take."""

    def retry(self, envelope_id: str, *, who: str) -> int:
        """An operator's second chance for a failed envelope: its failed deliveries (or its processing) are
        tried again from scratch, at the next sweep. Returns how many deliveries or stages were re-opened."""
        now = utcnow()
        with self.engine.begin() as conn:
            status = conn.execute(select(envelopes.c.status).where(envelopes.c.id == envelope_id)).scalar()
            if status != EnvelopeStatus.FAILED.value:
                return 0
            reopened = conn.execute(
                update(deliveries).where(deliveries.c.envelope_id == envelope_id, deliveries.c.status == "failed")
                .values(status="retry", attempts=0, next_try=now, updated_at=now)
            ).rowcount
            if reopened:
                new_status, touched = EnvelopeStatus.ROUTED.value, now
            else:
                # It failed before any delivery was planned (e.g. a transform): process it again. An old
                # updated_at makes the very next sweep re-queue it.
                new_status, touched, reopened = EnvelopeStatus.RECEIVED.value, datetime(2000, 1, 1, tzinfo=UTC), 1
            conn.execute(update(envelopes).where(envelopes.c.id == envelope_id)
                         .values(status=new_status, error_code=None, error=None, updated_at=touched))
            bulk_insert(conn, events, [{"envelope_id": envelope_id, "at": now, "stage": "operator", "outcome": "retry",
                                    "actor": who, "destination": None,
                                    "detail": f"re-opened by {who}: {reopened} step(s) will be tried again"}])
        return int(reopened)

    # -- reading (CLI, ops API) -----------------------------------------------------------------
    def search(self, *, text: str | None = None, guid: str | None = None, reg_number: str | None = None,
               eik: str | None = None, status: str | None = None, source: str | None = None,
               limit: int = 50, offset: int = 0) -> list[MessageSummary]:
        """Newest first. ``eik`` matches sender or recipient; ``text`` any of GUID, number, subject, EIK."""
        query = select(*SUMMARY_COLUMNS)
        if guid:
            g = guid.strip().strip("{}").lower()
            query = query.where(envelopes.c.document_guid == "{" + g + "}")
        if reg_number:
            query = query.where(envelopes.c.reg_number == reg_number.strip())
        if eik:
            query = query.where(or_(envelopes.c.sender_eik == eik.strip(), envelopes.c.recipient_eik == eik.strip()))
        if status:
            query = query.where(envelopes.c.status == status)
        if source:
            query = query.where(envelopes.c.source == source)
        if text:
            like = f"%{text.strip()}%"
            query = query.where(or_(
                envelopes.c.id == text.strip(), envelopes.c.document_guid.ilike(like),
                envelopes.c.reg_number.ilike(like), envelopes.c.subject.ilike(like),
                envelopes.c.sender_eik == text.strip(), envelopes.c.recipient_eik == text.strip(),
            ))
        query = query.order_by(envelopes.c.created_at.desc(), envelopes.c.id).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [summary(r) for r in conn.execute(query)]

    def get(self, envelope_id: str) -> MessageDetail | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*SUMMARY_COLUMNS, envelope_data.c.data)
                .join_from(envelopes, envelope_data, envelope_data.c.envelope_id == envelopes.c.id, isouter=True)
                .where(envelopes.c.id == envelope_id)
            ).first()
            if row is None:
                return None
            mapping = dict(row._mapping)
            data = json.loads(mapping.pop("data") or "{}")
            evs = [
                EventRecord(aware(r.at), r.stage, r.outcome, r.actor, r.destination, r.detail)  # type: ignore[arg-type]
                for r in conn.execute(select(events).where(events.c.envelope_id == envelope_id).order_by(events.c.id))
            ]
            dels = [
                DeliveryRecord(r.id, r.destination, r.status, r.attempts, aware(r.next_try), r.last_error,
                               r.receipt, aware(r.updated_at))  # type: ignore[arg-type]
                for r in conn.execute(
                    select(deliveries).where(deliveries.c.envelope_id == envelope_id).order_by(deliveries.c.destination)
                )
            ]
        return MessageDetail(summary_from_mapping(mapping), data, evs, dels)

    def status_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(envelopes.c.status, func.count()).group_by(envelopes.c.status))
            return {r[0]: int(r[1]) for r in rows}

    def delivery_counts(self) -> dict[tuple[str, str], int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.destination, deliveries.c.status, func.count())
                .group_by(deliveries.c.destination, deliveries.c.status)
            )
            return {(r[0], r[1]): int(r[2]) for r in rows}

    def count(self, *, status: str | None = None, source: str | None = None) -> int:
        query = select(func.count()).select_from(envelopes)
        if status:
            query = query.where(envelopes.c.status == status)
        if source:
            query = query.where(envelopes.c.source == source)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def timings(self, source: str) -> list[float]:
        """Seconds from journaled as received to the last change (delivery), per delivered envelope of ``source``."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(envelopes.c.created_at, envelopes.c.updated_at).where(
                envelopes.c.source == source, envelopes.c.status == EnvelopeStatus.DELIVERED.value))
            return [(r.updated_at - r.created_at).total_seconds() for r in rows]

