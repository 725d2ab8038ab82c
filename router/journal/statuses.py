"""Statuses per recipient in the journal: history rows, reports from destinations, and who was told.

Kurier's own statuses (accepted, queued, delivered, failed, paper original required) are rows of the
transactions that already commit each batch, so they cost no commit of their own: :mod:`.intake` copies
the accepted rows in with the envelopes (:func:`status_row`), :mod:`.stages` adds one multi-row INSERT
per batch (:func:`plan_status_rows`, :func:`delivery_status_rows`). A destination's later report is
journaled here, once however often it is repeated. The notifier reads the changes not yet told to their
source and marks them told: until then the journal says they are owed, across any crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from router.journal.db import bulk_insert, chunks
from router.journal.operator import OperatorJournal
from router.journal.records import (
    DeliveryOutcome,
    MessageDetail,
    PlanOutcome,
    StatusRecord,
    aware,
    current_statuses,
)
from router.journal.tables import deliveries, envelopes, status_changes
from schemas.envelope import EnvelopeStatus, utcnow
from schemas.errors import Refused, Transient
from schemas.status import RecipientStatus, StatusChange, StatusReport

__all__ = ["StatusJournal", "delivery_status_rows", "insert_status_rows", "plan_status_rows", "status_row"]


def status_row(envelope_id: str, source: str, destination: str | None, status: RecipientStatus, at: datetime,
               actor: str, reason: str | None = None) -> dict[str, Any]:
    """A history row whose source is known, for :func:`~router.journal.db.bulk_insert` (COPY on PostgreSQL)."""
    return {"envelope_id": envelope_id, "source": source, "destination": destination, "status": status.value,
            "reason": reason, "at": at, "actor": actor}


def insert_status_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert history rows. Rows whose ``source`` the stage knew are copied in (COPY on PostgreSQL);
    for the others the database fills it in per row, by primary key, in one multi-row INSERT.

    A lookup by primary key per row stays cheap whatever the planner knows; a join or an IN list over
    the batch is planned as sequential scans on a journal not analyzed yet (a fresh one, the bench's).
    """
    known = [row for row in rows if row.get("source")]
    bulk_insert(conn, status_changes, known)
    unknown = [{k: v for k, v in row.items() if k != "source"} for row in rows if not row.get("source")]
    if not unknown:
        return
    source = select(envelopes.c.source).where(envelopes.c.id == bindparam("source_of")).scalar_subquery()
    conn.execute(status_changes.insert().values(source=source), [{**row, "source_of": row["envelope_id"]}
                                                                 for row in unknown])


def delivery_status_rows(conn: Connection, outcomes: Iterable[DeliveryOutcome], at: datetime, actor: str) -> None:
    """History rows of a delivery batch: delivered, or failed with the reason (a retry is no news)."""
    insert_status_rows(conn, [
        {"envelope_id": o.envelope_id, "source": o.source, "destination": o.destination, "status": o.status,
         "reason": None if o.status == "delivered" else o.detail, "at": at, "actor": actor}
        for o in outcomes if o.status in ("delivered", "failed")
    ])


_ENDED = {EnvelopeStatus.FAILED: RecipientStatus.FAILED, EnvelopeStatus.PAPER: RecipientStatus.PAPER_REQUIRED}


def plan_status_rows(conn: Connection, plans: Sequence[PlanOutcome], planned: Sequence[dict[str, Any]],
                     at: datetime, actor: str) -> None:
    """History rows of a processing batch: queued per delivery planned now (``planned``: a redelivered
    batch plans none, so queues nothing twice), failed or paper-required for envelopes that will not be
    delivered at all."""
    sources = {p.envelope_id: p.source for p in plans}
    rows = [{"envelope_id": r["envelope_id"], "source": sources.get(r["envelope_id"], ""),
             "destination": r["destination"], "status": RecipientStatus.QUEUED.value, "reason": None, "at": at,
             "actor": actor} for r in planned]
    rows += [{"envelope_id": p.envelope_id, "source": p.source, "destination": None, "status": _ENDED[p.status].value,
              "reason": p.error, "at": at, "actor": actor} for p in plans if p.status in _ENDED]
    insert_status_rows(conn, rows)


def _record(row: Any) -> StatusRecord:
    status = RecipientStatus(row.status)
    return StatusRecord(row.seq, aware(row.at), row.destination, status, status.label,  # type: ignore[arg-type]
                        row.reg_number, row.reg_date, row.reason, row.actor, aware(row.told_at), row.tell_error)


class StatusJournal(OperatorJournal):
    """Reports from destinations, the status history operators read, and the changes owed to sources."""

    # -- reports from destinations --------------------------------------------------------------
    def record_report(self, connection: str, report: StatusReport) -> bool:
        """Journal what ``connection`` reports about a document it delivered; False when it is a repeat.

        A repeat is a report equal (status, number, date, reason) to one already in that delivery's
        history: peers resend, and a poller re-reads a file after a crash. Raises :class:`Refused` when
        the document was never delivered through ``connection``, :class:`Transient` while its delivery
        there is not journaled as done yet (the file may be written and the journal not committed).
        """
        guid, what = report.document_guid, f"{connection} reported {report.status.value!r} for {report.document_guid}"
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(envelopes.c.id, envelopes.c.source, deliveries.c.id.label("delivery_id"),
                       deliveries.c.destination, deliveries.c.status.label("delivery_status"))
                .select_from(envelopes.outerjoin(deliveries, deliveries.c.envelope_id == envelopes.c.id))
                .where(envelopes.c.document_guid == guid)
            ).all()
            if not rows:
                raise Refused(f"{what}, but Kurier knows no document with that DocumentGUID", code="unknown-document")
            here = [r for r in rows if r.destination == connection]
            delivered = [r for r in here if r.delivery_status == "delivered"]
            if not here or (not delivered and all(r.delivery_status == "failed" for r in here)):
                went = sorted({r.destination for r in rows if r.destination and r.delivery_status == "delivered"})
                why = (f"it was delivered to {', '.join(went)}" if went else "it was not delivered anywhere")
                if here:
                    why = "Kurier gave up delivering it there (the delivery failed)"
                raise Refused(f"{what}, but that document was never delivered through {connection} ({why}); "
                              "a recipient can only report on documents it received", code="not-delivered-here")
            if not delivered:
                raise Transient(f"{what}: its delivery through {connection} is not journaled as done yet; "
                                "report it again shortly")
            if len(delivered) > 1:
                sources = ", ".join(sorted(r.source for r in delivered))
                raise Refused(f"{what}, but documents with that DocumentGUID from several sources ({sources}) were "
                              f"delivered through {connection}; it cannot tell which one it means", code="ambiguous")
            row = delivered[0]
            # A write that changes nothing, to hold this delivery's row lock (SQLite: the write lock) while
            # the repeat check and the insert run: two pollers reporting at once record it once.
            conn.execute(update(deliveries).where(deliveries.c.id == row.delivery_id)
                         .values(receipt=deliveries.c.receipt))
            c = status_changes.c
            repeat = conn.execute(select(c.seq).where(
                c.envelope_id == row.id, c.destination == connection, c.status == report.status.value,
                c.reg_number.is_not_distinct_from(report.reg_number), c.reg_date.is_not_distinct_from(report.reg_date),
                c.reason.is_not_distinct_from(report.reason),
            ).limit(1)).first()
            if repeat is not None:
                return False
            # In UTC, as every time in the journal: MariaDB's DATETIME keeps no zone.
            at = report.at.astimezone(UTC)
            entry = status_row(row.id, row.source, connection, report.status, at, connection, report.reason)
            conn.execute(status_changes.insert(), [{**entry, "reg_number": report.reg_number,
                                                    "reg_date": report.reg_date}])
        return True

    # -- reading --------------------------------------------------------------------------------
    def status_history(self, envelope_id: str) -> list[StatusRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(status_changes).where(status_changes.c.envelope_id == envelope_id)
                                .order_by(status_changes.c.seq))
            return [_record(r) for r in rows]

    def get(self, envelope_id: str) -> MessageDetail | None:
        """One document's story (see :class:`OperatorJournal`), with its status history per recipient."""
        detail = super().get(envelope_id)
        if detail is None:
            return None
        history = self.status_history(envelope_id)
        return replace(detail, statuses=history, current=current_statuses(history))

    # -- telling sources (the notifier) ---------------------------------------------------------
    def untold(self, sources: Iterable[str], per_source: int = 200) -> list[StatusChange]:
        """Changes not yet told to these sources, oldest first, at most ``per_source`` of each."""
        c = status_changes.c
        out: list[StatusChange] = []
        with self.engine.connect() as conn:
            for source in sources:
                rows = conn.execute(
                    select(status_changes, envelopes.c.document_guid, envelopes.c.reg_number.label("source_reg_number"),
                           envelopes.c.recipient_eik, envelopes.c.recipient_name)
                    .join(envelopes, envelopes.c.id == c.envelope_id)
                    .where(c.source == source, c.told_at.is_(None)).order_by(c.seq).limit(per_source)
                )
                out.extend(
                    StatusChange(seq=r.seq, envelope_id=r.envelope_id, document_guid=r.document_guid, source=r.source,
                                 source_reg_number=r.source_reg_number, destination=r.destination,
                                 recipient_eik=r.recipient_eik, recipient_name=r.recipient_name,
                                 status=RecipientStatus(r.status), reg_number=r.reg_number, reg_date=r.reg_date,
                                 reason=r.reason, at=aware(r.at))
                    for r in rows
                )
        return out

    def mark_told(self, told: Sequence[int], failed: Mapping[int, str] | None = None) -> None:
        """Record that these changes were told (or, ``failed``, never can be, and why)."""
        now = utcnow()
        c = status_changes.c
        with self.engine.begin() as conn:
            for chunk in chunks(sorted(told), 500):
                conn.execute(update(status_changes).where(c.seq.in_(chunk), c.told_at.is_(None)).values(told_at=now))
            for seq, error in (failed or {}).items():
                conn.execute(update(status_changes).where(c.seq == seq, c.told_at.is_(None))
                             .values(told_at=now, tell_error=error))
