"""Alembic, driven from code: `kurier db upgrade` and start-up use this, no alembic.ini needed.

Migrations are serialised across processes: two hubs starting together on an empty journal would
otherwise both create the tables, and one would die on "relation already exists". The lock is the
database's own where it has one (PostgreSQL ``pg_advisory_lock``, MariaDB/MySQL ``GET_LOCK``), held on a
connection of its own while Alembic works on another; SQLite gets a lock file beside the database.
The second hub waits, then finds the schema current and has nothing to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

from router.journal.errors import JOURNAL_UNAVAILABLE
from schemas.errors import Transient

__all__ = ["alembic_config", "current", "migration_lock", "upgrade"]

# pg_advisory_lock takes a bigint: "kuriermg" in ASCII, the same in every version of Kurier.
_PG_LOCK_KEY = 0x6B75726965726D67
_WAIT_SECONDS = 300.0


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "router.journal:migrations")
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, wait: float = _WAIT_SECONDS) -> None:
    with migration_lock(engine, wait=wait):
        command.upgrade(alembic_config(engine), revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _timed_out(wait: float) -> Transient:
    return Transient(f"another Kurier process has been migrating the journal for {wait:.0f}s; if none is running, "
                     "its lock is stale (restart the database session or remove the lock file)",
                     code=JOURNAL_UNAVAILABLE)


@contextlib.contextmanager
def migration_lock(engine: Engine, *, wait: float = _WAIT_SECONDS) -> Iterator[None]:
    """Hold the journal's migration lock (waiting up to ``wait`` seconds for another process's)."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with engine.connect() as conn:
            deadline = time.monotonic() + wait
            while not conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _PG_LOCK_KEY}).scalar():
                conn.rollback()
                if time.monotonic() > deadline:
                    raise _timed_out(wait)
                time.sleep(0.1)
            conn.commit()  # the lock belongs to the session, not to this transaction
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                    conn.commit()
                except Exception:
                    conn.invalidate()  # closing the session is what releases it then
    elif dialect in ("mysql", "mariadb"):
        name = f"kurier-migrate-{engine.url.database}"[:64]
        with engine.connect() as conn:
            if conn.execute(text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": int(wait)}).scalar() != 1:
                raise _timed_out(wait)
            try:
                yield
            finally:
                try:
                    conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
                except Exception:
                    conn.invalidate()
    elif dialect == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        path = f"{engine.url.database}.migrate-lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise Transient(f"the journal database is unavailable: cannot create {path}: {exc.strerror}",
                            code=JOURNAL_UNAVAILABLE) from exc
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise _timed_out(wait) from None
                    time.sleep(0.1)
            yield  # the lock goes with the descriptor, whatever happens
        finally:
            os.close(fd)
    else:
        yield
