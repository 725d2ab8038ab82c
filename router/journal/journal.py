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

from sqlalchemy import Engine, select, text

from router.journal.base import fingerprint, retry_at
from router.journal.columns import cut
from router.journal.db import make_engine
from router.journal.errors import translate_errors
from router.journal.intake import IntakeJournal
from router.journal.operator import OperatorJournal
from router.journal.recovery import RecoveryJournal
from router.journal.stages import StageJournal
from router.journal.statuses import StatusJournal
from router.journal.tables import events, metadata
from router.journal.wire import WireJournal

__all__ = ["Journal", "fingerprint", "retry_at"]

_ACTOR_CHARS: int = getattr(events.c.actor.type, "length", None) or 120


@translate_errors
class Journal(IntakeJournal, StageJournal, RecoveryJournal, StatusJournal, OperatorJournal, WireJournal):
    """The journal on any SQLAlchemy database (SQLite by default, PostgreSQL or MariaDB by URL).

    Its public methods raise only Kurier's errors: :class:`~schemas.errors.Transient` when the database
    is unavailable, :class:`~schemas.errors.Permanent` (``journal-refused``) when it refuses what it was
    given (see :mod:`router.journal.errors`).
    """

    def __init__(self, url: str, *, actor: str = "kurier", engine: Engine | None = None) -> None:
        self.url = url
        self.actor = cut(actor, _ACTOR_CHARS)  # a long node_name must not make every event unwritable
        self.engine = engine or make_engine(url)
        # A look-up in a transaction of its own is BEGIN, SELECT and ROLLBACK: three round trips where one
        # does, on the workers' hot path. (SQLite's begin and rollback are no round trips.)
        self.reader = (self.engine if self.engine.dialect.name == "sqlite"
                       else self.engine.execution_options(isolation_level="AUTOCOMMIT"))

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (what `kurier db upgrade` runs)."""
        from router.journal.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    def analyze(self) -> None:
        """Refresh the database's statistics of the journal's tables.

        PostgreSQL plans a look-up of a hundred ids in a table it has no statistics of as reading half the
        table, and so scans it whole; its autovacuum gathers them within a minute or so of a table's
        growth, but a journal just created (a new install, the bench's scratch journal) is planned blind
        until then. SQLite and MariaDB keep theirs as they go.
        """
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.connect() as conn:
            for table in metadata.sorted_tables:
                conn.execute(text(f"ANALYZE {table.name}"))
            conn.commit()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(1))

