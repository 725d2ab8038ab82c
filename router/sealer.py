"""The sealer: a thread beside the sweeper that hash-chains the journal's evidence rows as they are committed.

It never holds up a writer: every ``seal.interval_seconds`` it seals what was committed since its last
block (:func:`router.journal.seal.seal_once`), and every ``seal.tsa_interval_seconds`` it has the newest
head timestamped by the TSA (when ``seal.tsa_url`` is set). A TSA that is down costs only the timestamp:
the chain goes on, and the next pass stamps the newest head.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from router.config import SealConfig
from router.journal.seal import seal_once
from router.journal.tables import journal_seals
from router.journal.tsa import http_timestamper, stamp_head
from schemas.errors import KurierError, redact_secrets
from schemas.outage import Outage

if TYPE_CHECKING:
    from pyhanko.sign.timestamps.api import TimeStamper

__all__ = ["Sealer"]

log = logging.getLogger("kurier.sealer")


class Sealer(threading.Thread):
    def __init__(self, engine: Engine, config: SealConfig, stop: threading.Event,
                 timestamper: TimeStamper | None = None) -> None:
        super().__init__(name="sealer", daemon=True)
        self.engine = engine
        self.config = config
        self.stop_event = stop
        if timestamper is None and config.tsa_url:
            timestamper = http_timestamper(config.tsa_url, config.tsa_timeout_seconds)
        self.timestamper = timestamper
        self.outage = Outage("the sealer (hash-chaining the journal)", log)
        tsa = redact_secrets(config.tsa_url or "given", limit=None)
        self.tsa_outage = Outage(f"the timestamp authority {tsa}", log)
        self._stamped = float("-inf")  # monotonic time of the last token

    def seal(self) -> int:
        """Seal everything committed so far (several blocks for a backlog); how many rows were sealed."""
        sealed = 0
        while True:
            block = seal_once(self.engine, max_rows=self.config.max_block_rows, gap_seconds=self.config.gap_seconds)
            if block is None:
                return sealed
            sealed += block.row_count
            if block.row_count < self.config.max_block_rows or self.stop_event.is_set():
                return sealed

    def stamp(self, *, force: bool = False) -> bool:
        """Timestamp the newest head if it is time (or ``force``) and it has no token yet; whether one was added."""
        if self.timestamper is None:
            return False
        if not force and time.monotonic() - self._stamped < self.config.tsa_interval_seconds:
            return False
        with self.engine.connect() as conn:
            last = conn.execute(select(journal_seals.c.block, journal_seals.c.head, journal_seals.c.tsa_token)
                                .order_by(journal_seals.c.block.desc()).limit(1)).first()
        if last is None or last.tsa_token is not None:
            return False
        try:
            token, at = stamp_head(self.timestamper, last.head)
        except KurierError as exc:
            self.tsa_outage.failed(f"{redact_secrets(str(exc))}; the chain goes on, the next head is stamped later")
            return False
        self.tsa_outage.recovered()
        with self.engine.begin() as conn:
            conn.execute(update(journal_seals).where(journal_seals.c.block == last.block,
                                                     journal_seals.c.tsa_token.is_(None))
                         .values(tsa_token=token, tsa_at=at))
        self._stamped = time.monotonic()
        # In the log too: a record outside the database, so even a journal truncated with its seal table
        # can be told from the one whose head was stamped.
        log.info("journal head timestamped: block %d, head %s, at %s", last.block, last.head, at.isoformat())
        return True

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.seal()
                self.stamp()
            except Exception as exc:
                # The database down: said once (and every 30 s), not at every pass; a bug: its traceback, once.
                if not isinstance(exc, KurierError | SQLAlchemyError) and not self.outage.down:
                    log.exception("sealing failed unexpectedly, trying again in %gs", self.config.interval_seconds)
                self.outage.failed(f"{redact_secrets(str(exc))}; trying again every {self.config.interval_seconds:g}s")
            else:
                self.outage.recovered()
            self.stop_event.wait(self.config.interval_seconds)
