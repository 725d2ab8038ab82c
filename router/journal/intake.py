"""Intake writes: documents accepted or refused as they arrive."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select

from router.journal.base import ENVELOPE_FIELDS, JournalBase, dump_and_fingerprint, envelope_row, fingerprint
from router.journal.columns import cannot_hold, fit_row
from router.journal.db import bulk_insert, chunks
from router.journal.errors import is_database_error, is_integrity_error
from router.journal.records import (
    AcceptOutcome,
    StageEvent,
)
from router.journal.statuses import status_row
from router.journal.tables import envelope_data, envelopes, events, status_changes
from schemas.envelope import Envelope, EnvelopeStatus, new_envelope_id, utcnow
from schemas.identifiers import new_guid
from schemas.status import RecipientStatus

__all__ = ["IntakeJournal"]


class IntakeJournal(JournalBase):
    """Records what sources hand in, deduplicated by (source, DocumentGUID)."""

    # -- intake ---------------------------------------------------------------------------------
    def accept(self, batch: Sequence[Envelope], stage_events: Sequence[StageEvent] = ()) -> list[AcceptOutcome]:
        """Record newly received envelopes; tell resends and DocumentGUID clashes apart.

        Deduplication is by (source, DocumentGUID): a source handing in the same document again (after
        a crash, or a resend) gets the first envelope's id back and nothing is queued twice. Raises
        :class:`~schemas.errors.Permanent` (``journal-refused``) for a batch the journal cannot hold.
        """
        try:
            return self._accept(batch, stage_events)
        except Exception as exc:
            # Two hubs took in the same document at the same moment: both looked, neither found it, one
            # insert lost on the unique key. Looking again finds the winner's row: a plain duplicate.
            if not (is_database_error(exc) and is_integrity_error(exc)):
                raise
            return self._accept(batch, stage_events)

    def _accept(self, batch: Sequence[Envelope], stage_events: Sequence[StageEvent]) -> list[AcceptOutcome]:
        now = utcnow()
        dumps = [dump_and_fingerprint(env) for env in batch]  # (JSON, fingerprint): one dump each
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
            new_statuses: list[dict[str, Any]] = []
            fresh: dict[tuple[str, str], str] = {}
            for env, (data, fp), key in zip(batch, dumps, keys, strict=True):
                if key in existing:
                    row = existing[key]
                    same = row.fingerprint == fp
                    outcomes.append(AcceptOutcome(row.id, duplicate=same, conflict=not same, status=row.status))
                    continue
                if key in fresh:  # the same document twice in one batch
                    outcomes.append(AcceptOutcome(fresh[key], duplicate=True))
                    continue
                fresh[key] = env.id
                new_row = envelope_row(env, fp, EnvelopeStatus.RECEIVED, now)
                if (problem := cannot_hold(envelopes, new_row, ENVELOPE_FIELDS)) is not None:
                    raise problem  # (SQLite would store it; the others would not: refuse it everywhere)
                new_rows.append(new_row)
                new_data.append({"envelope_id": env.id, "data": data})
                new_events.extend(self._event_rows(env.id, stage_events, now))
                new_statuses.append(status_row(env.id, env.source, None, RecipientStatus.ACCEPTED, now, self.actor))
                outcomes.append(AcceptOutcome(env.id))
            if new_rows:
                bulk_insert(conn, envelopes, new_rows)
                bulk_insert(conn, envelope_data, new_data)
                bulk_insert(conn, status_changes, new_statuses)  # the source is told "accepted"
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
        row = envelope_row(env, fingerprint(env), EnvelopeStatus.REFUSED, now)
        row.update(error_code=error_code, error=error)
        # A refusal is always journaled: what the columns cannot hold is cut ("…"); the JSON keeps it whole.
        row = fit_row(envelopes, row)
        if len(row["id"]) != len(env.id):  # an id that had to be cut would not be the envelope's any more
            row["id"] = new_envelope_id()
        detail = f"{what}: {error}" if what else error
        with self.engine.begin() as conn:
            try:
                with conn.begin_nested():
                    conn.execute(envelopes.insert(), [row])
            except Exception as exc:
                if not is_integrity_error(exc):
                    raise
                # A refused resend of a document we hold under the same GUID: journal it under a new id.
                row.update(id=new_envelope_id(), document_guid=new_guid())
                conn.execute(envelopes.insert(), [row])
            self._refused_data(conn, row["id"], env.to_json())
            bulk_insert(conn, events, self._event_rows(row["id"], [StageEvent(stage, "refused", detail)], now))
        return str(row["id"])

    @staticmethod
    def _refused_data(conn: Connection, envelope_id: str, data: str) -> None:
        """The refused envelope's JSON; when the database cannot hold that much (MySQL's TEXT: 64 KB), its start."""
        try:
            with conn.begin_nested():
                conn.execute(envelope_data.insert(), [{"envelope_id": envelope_id, "data": data}])
        except Exception as exc:
            if not is_database_error(exc) or is_integrity_error(exc):
                raise
            head = json.dumps({"truncated": f"the envelope's JSON ({len(data.encode())} bytes) is more than this "
                                            "database holds in a column; its beginning follows",
                               "beginning": data[:8000]}, ensure_ascii=False)
            conn.execute(envelope_data.insert(), [{"envelope_id": envelope_id, "data": head}])

