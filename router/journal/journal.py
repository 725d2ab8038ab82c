"""The journal: the source of truth for what happened to every document.

Queues carry work; the journal says what is done. Every stage writes here before its queue message is
acknowledged, so after any crash the journal tells what must be redone, and a stage seeing an
envelope already past it knows to skip (idempotence). Writes come in batches: one transaction per
worker batch, which is what makes a journal row per event affordable at thousands of documents/s.

It is split by responsibility, one mixin each: :mod:`.intake` (documents arriving), :mod:`.stages`
(processing and delivery outcomes), :mod:`.recovery` (what the sweeper re-queues),
:mod:`.operator` (what operators read and do) and :mod:`.statuses` (statuses per recipient: reports
from destinations, history, what sources are still to be told).
"""

from __future__ import annotations

from sqlalchemy import Engine, select

from router.journal.base import fingerprint, retry_at
from router.journal.columns import cut
from router.journal.db import make_engine
from router.journal.errors import translate_errors
from router.journal.intake import IntakeJournal
from router.journal.operator import OperatorJournal
from router.journal.recovery import RecoveryJournal
from router.journal.stages import StageJournal
from router.journal.statuses import StatusJournal
from router.journal.tables import events

__all__ = ["Journal", "fingerprint", "retry_at"]

_ACTOR_CHARS: int = getattr(events.c.actor.type, "length", None) or 120


@translate_errors
class Journal(IntakeJournal, StageJournal, RecoveryJournal, StatusJournal, OperatorJournal):
    """The journal on any SQLAlchemy database (SQLite by default, PostgreSQL or MariaDB by URL).

    Its public methods raise only Kurier's errors: :class:`~schemas.errors.Transient` when the database
    is unavailable, :class:`~schemas.errors.Permanent` (``journal-refused``) when it refuses what it was
    given (see :mod:`router.journal.errors`).
    """

    def __init__(self, url: str, *, actor: str = "kurier", engine: Engine | None = None) -> None:
        self.url = url
        self.actor = cut(actor, _ACTOR_CHARS)  # a long node_name must not make every event unwritable
        self.engine = engine or make_engine(url)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (what `kurier db upgrade` runs)."""
        from router.journal.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

