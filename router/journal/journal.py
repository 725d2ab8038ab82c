"""The journal: the source of truth for what happened to every document.

Queues carry work; the journal says what is done. Every stage writes here before its queue message is
acknowledged, so after any crash the journal tells what must be redone, and a stage seeing an
envelope already past it knows to skip (idempotence). Writes come in batches: one transaction per
worker batch, which is what makes a journal row per event affordable at thousands of documents/s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from router.journal.db import bulk_insert, chunks, make_engine
from router.journal.records import (
    SUMMARY_COLUMNS,
    AcceptOutcome,
    DeliveryOutcome,
    DeliveryRecord,
    EventRecord,
    MessageDetail,
    MessageSummary,
    PlanOutcome,
    StageEvent,
    aware,
    summary,
    summary_from_mapping,
)
from router.journal.tables import deliveries, envelope_data, envelopes, events
from schemas.envelope import Envelope, EnvelopeStatus, new_envelope_id, utcnow
from schemas.identifiers import new_guid

__all__ = [
    "AcceptOutcome",
    "DeliveryOutcome",
    "DeliveryRecord",
    "EventRecord",
    "Journal",
    "MessageDetail",
    "MessageSummary",
    "PlanOutcome",
    "StageEvent",
    "fingerprint",
]


def fingerprint(envelope: Envelope) -> str:
    """SHA-256 of what the document *is* (not when or under which id it arrived)."""
    # pydantic writes fields in the model's order, so the same content always gives the same bytes.
    data = envelope.model_dump_json(exclude={"id", "status", "received_at"}, exclude_none=True)
    return hashlib.sha256(data.encode()).hexdigest()


class Journal:
    """The journal on any SQLAlchemy database (SQLite by default, PostgreSQL or MariaDB by URL)."""

    def __init__(self, url: str, *, actor: str = "kurier", engine: Engine | None = None) -> None:
        self.url = url
        self.actor = actor
        self.engine = engine or make_engine(url)

    # -- schema ---------------------------------------------------------------------------------
    def upgrade(self) -> None:
        """Bring the schema to the newest migration (what `kurier db upgrade` runs)."""
        from router.journal.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    # -- intake ---------------------------------------------------------------------------------
    def accept(self, batch: Sequence[Envelope], stage_events: Sequence[StageEvent] = ()) -> list[AcceptOutcome]:
        """Record newly received envelopes; tell resends and DocumentGUID clashes apart.

        Deduplication is by (source, DocumentGUID): a source handing in the same document again (after
        a crash, or a resend) gets the first envelope's id back and nothing is queued twice.
        """
        now = utcnow()
        prints = [fingerprint(env) for env in batch]
        keys = [(env.source, env.document_guid) for env in batch]
        with self.engine.begin() as conn:
            existing: dict[tuple[str, str], Any] = {}
            by_source: dict[str, set[str]] = {}
            for source, guid in keys:
                by_source.setdefault(source, set()).add(guid)
            for source, guids in by_source.items():
                for chunk in chunks(sorted(guids), 500):
                    # Both columns of the unique (document_guid, source) key, one source at a time: a
                    # single index scan the planner picks even before the table has statistics.
                    rows = conn.execute(
                        select(envelopes.c.id, envelopes.c.source, envelopes.c.document_guid,
                               envelopes.c.fingerprint, envelopes.c.status)
                        .where(envelopes.c.source == source, envelopes.c.document_guid.in_(chunk))
                    )
                    for row in rows:
                        existing[(row.source, row.document_guid)] = row
            outcomes: list[AcceptOutcome] = []
            new_rows: list[dict[str, Any]] = []
            new_data: list[dict[str, Any]] = []
            new_events: list[dict[str, Any]] = []
            fresh: dict[tuple[str, str], str] = {}
            for env, fp, key in zip(batch, prints, keys, strict=True):
                if key in existing:
                    row = existing[key]
                    same = row.fingerprint == fp
                    outcomes.append(AcceptOutcome(row.id, duplicate=same, conflict=not same, status=row.status))
                    continue
                if key in fresh:  # the same document twice in one batch
                    outcomes.append(AcceptOutcome(fresh[key], duplicate=True))
                    continue
                fresh[key] = env.id
                new_rows.append(_envelope_row(env, fp, EnvelopeStatus.RECEIVED, now))
                new_data.append({"envelope_id": env.id, "data": env.to_json()})
                new_events.extend(self._event_rows(env.id, stage_events, now))
                outcomes.append(AcceptOutcome(env.id))
            if new_rows:
                bulk_insert(conn, envelopes, new_rows)
                bulk_insert(conn, envelope_data, new_data)
            if new_events:
                bulk_insert(conn, events, new_events)
        return outcomes

    def refuse(self, envelope: Envelope | None, *, source: str, stage: str, error_code: str, error: str,
               what: str | None = None) -> str:
        """Journal refused input, with as much of the envelope as could be read. Returns its id."""
        now = utcnow()
        if envelope is None:
            envelope = Envelope(document_guid=new_guid(), source=source, subject=what or "")
        env = envelope.model_copy(update={"status": EnvelopeStatus.REFUSED, "source": source})
        row = _envelope_row(env, fingerprint(env), EnvelopeStatus.REFUSED, now)
        row.update(error_code=error_code, error=error)
        detail = f"{what}: {error}" if what else error
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(envelopes.insert(), [row])
            except IntegrityError:
                # A refused resend of a document we hold under the same GUID: journal it under a new id.
                row.update(id=new_envelope_id(), document_guid=new_guid())
                conn.execute(envelopes.insert(), [row])
            conn.execute(envelope_data.insert(), [{"envelope_id": row["id"], "data": env.to_json()}])
            bulk_insert(conn, events, self._event_rows(row["id"], [StageEvent(stage, "refused", detail)], now))
        return str(row["id"])

    # -- processing -----------------------------------------------------------------------------
    def statuses(self, envelope_ids: Iterable[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(envelope_ids)), 500):
                for row in conn.execute(select(envelopes.c.id, envelopes.c.status).where(envelopes.c.id.in_(chunk))):
                    result[row.id] = row.status
        return result

    def record_plans(self, plans: Sequence[PlanOutcome]) -> None:
        """Commit a processing batch: stage events, planned deliveries and new statuses, all or nothing."""
        if not plans:
            return
        now = utcnow()
        delivery_rows = list({
            f"{p.envelope_id}:{d}": {"id": f"{p.envelope_id}:{d}", "envelope_id": p.envelope_id, "destination": d,
                                     "status": "pending",
             "attempts": 0, "updated_at": now}
            for p in plans for d in p.destinations
        }.values())
        with self.engine.begin() as conn:
            if delivery_rows:
                have: set[str] = set()
                for chunk in chunks([r["id"] for r in delivery_rows], 500):
                    have.update(conn.execute(select(deliveries.c.id).where(deliveries.c.id.in_(chunk))).scalars())
                missing = [r for r in delivery_rows if r["id"] not in have]
                if missing:
                    bulk_insert(conn, deliveries, missing)
            event_rows = [row for p in plans for row in self._event_rows(p.envelope_id, p.events, now)]
            if event_rows:
                bulk_insert(conn, events, event_rows)
            by_status: dict[tuple[str, str | None, str | None, str | None], list[str]] = {}
            for p in plans:
                if p.data is not None:
                    conn.execute(update(envelope_data).where(envelope_data.c.envelope_id == p.envelope_id)
                                 .values(data=p.data))
                by_status.setdefault((p.status.value, p.error_code, p.error, None), []).append(p.envelope_id)
            for (status, code, error, _), ids in by_status.items():
                conn.execute(
                    update(envelopes)
                    .where(envelopes.c.id.in_(ids), envelopes.c.status == EnvelopeStatus.RECEIVED.value)
                    .values(status=status, error_code=code, error=error, updated_at=now)
                )

    def pending_deliveries(self, envelope_ids: Iterable[str]) -> list[tuple[str, str, str]]:
        """(delivery id, envelope id, destination) still to do for these envelopes."""
        out: list[tuple[str, str, str]] = []
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(envelope_ids)), 500):
                rows = conn.execute(
                    select(deliveries.c.id, deliveries.c.envelope_id, deliveries.c.destination).where(
                        deliveries.c.envelope_id.in_(chunk), deliveries.c.status.in_(("pending", "retry"))
                    )
                )
                out.extend((r.id, r.envelope_id, r.destination) for r in rows)
        return out

    # -- delivery -------------------------------------------------------------------------------
    def delivery_statuses(self, delivery_ids: Iterable[str]) -> dict[str, tuple[str, int]]:
        result: dict[str, tuple[str, int]] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(delivery_ids)), 500):
                rows = conn.execute(
                    select(deliveries.c.id, deliveries.c.status, deliveries.c.attempts)
                    .where(deliveries.c.id.in_(chunk))
                )
                result.update({r.id: (r.status, r.attempts) for r in rows})
        return result

    def record_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Commit a delivery batch, then settle envelopes whose deliveries are all done."""
        if not outcomes:
            return
        now = utcnow()
        with self.engine.begin() as conn:
            delivered = [o.delivery_id for o in outcomes if o.status == "delivered"]
            for chunk in chunks(delivered, 500):
                conn.execute(
                    update(deliveries).where(deliveries.c.id.in_(chunk))
                    .values(status="delivered", attempts=deliveries.c.attempts + 1, updated_at=now, next_try=None)
                )
            for o in outcomes:
                if o.status == "delivered":
                    continue
                conn.execute(
                    update(deliveries).where(deliveries.c.id == o.delivery_id, deliveries.c.status != "delivered")
                    .values(status=o.status, attempts=deliveries.c.attempts + 1, last_error=o.detail,
                            next_try=o.next_try, updated_at=now)
                )
            bulk_insert(conn, events, [
                {"envelope_id": o.envelope_id, "at": now, "stage": "deliver", "outcome": o.status,
                 "actor": self.actor, "destination": o.destination, "detail": o.detail}
                for o in outcomes
            ])
            touched = sorted({o.envelope_id for o in outcomes})
            for chunk in chunks(touched, 500):
                open_delivery = exists().where(
                    deliveries.c.envelope_id == envelopes.c.id, deliveries.c.status != "delivered"
                )
                conn.execute(
                    update(envelopes)
                    .where(envelopes.c.id.in_(chunk), envelopes.c.status == EnvelopeStatus.ROUTED.value, ~open_delivery)
                    .values(status=EnvelopeStatus.DELIVERED.value, updated_at=now)
                )
                undecided = exists().where(
                    deliveries.c.envelope_id == envelopes.c.id, deliveries.c.status.in_(("pending", "retry"))
                )
                failed = exists().where(deliveries.c.envelope_id == envelopes.c.id, deliveries.c.status == "failed")
                conn.execute(
                    update(envelopes)
                    .where(envelopes.c.id.in_(chunk), envelopes.c.status == EnvelopeStatus.ROUTED.value,
                           failed, ~undecided)
                    .values(status=EnvelopeStatus.FAILED.value, error_code="delivery-failed",
                            error="a delivery failed permanently; see the delivery events", updated_at=now)
                )

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

    def load(self, envelope_ids: Iterable[str]) -> dict[str, Envelope]:
        result: dict[str, Envelope] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(envelope_ids)), 500):
                rows = conn.execute(select(envelope_data.c.envelope_id, envelope_data.c.data)
                                    .where(envelope_data.c.envelope_id.in_(chunk)))
                for row in rows:
                    result[row.envelope_id] = Envelope.from_json(row.data)
        return result

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

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

    # -- helpers --------------------------------------------------------------------------------
    def _event_rows(self, envelope_id: str, stage_events: Iterable[StageEvent], now: datetime) -> list[dict[str, Any]]:
        return [
            {"envelope_id": envelope_id, "at": now, "stage": e.stage, "outcome": e.outcome, "actor": self.actor,
             "destination": e.destination, "detail": e.detail}
            for e in stage_events
        ]


def _envelope_row(env: Envelope, fp: str, status: EnvelopeStatus, now: datetime) -> dict[str, Any]:
    return {
        "id": env.id, "document_guid": env.document_guid, "parent_guid": env.parent_guid, "source": env.source,
        "fingerprint": fp, "sender_eik": env.sender.eik, "sender_guid": env.sender.guid,
        "sender_name": env.sender.name, "recipient_eik": env.recipient.eik, "recipient_guid": env.recipient.guid,
        "recipient_name": env.recipient.name, "kind": env.kind, "subject": env.subject,
        "reg_number": env.reg_number, "reg_date": env.reg_date, "procedure_code": env.procedure_code,
        "status": status.value, "error_code": None, "error": None,
        "created_at": now, "updated_at": now,
    }


def retry_at(attempt: int, first: float, maximum: float) -> datetime:
    """When to try a delivery again after ``attempt`` failed tries: exponential, capped."""
    delay = min(maximum, first * (2 ** max(0, attempt - 1)))
    return utcnow() + timedelta(seconds=delay)
