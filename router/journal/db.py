"""Database plumbing for the journal: engines, bulk inserts, chunked IN lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Table, any_, bindparam, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import ArgumentError

from schemas.errors import ConfigError, redact_secrets

__all__ = ["bulk_insert", "chunks", "make_engine", "one_of"]


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows; on PostgreSQL through COPY, which costs a fraction of a multi-row INSERT's CPU
    (client and server) and keeps the journal from being the pipeline's bottleneck."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    driver = conn.connection.driver_connection  # the psycopg connection, inside this same transaction
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(
        f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    ) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def one_of(conn: Connection, column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values`` as one statement text whatever the count: ``= ANY(array)`` on PostgreSQL.

    An IN list's text changes with its length, so PostgreSQL parses and plans each batch's statements
    anew; with one array parameter each statement is prepared once per connection and reused.
    """
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def make_engine(url: str) -> Engine:
    """An engine for ``url``; a missing driver is a configuration error that says what to install."""
    try:
        return _make_engine(url)
    except ModuleNotFoundError as exc:
        extra = {"psycopg": "postgres", "pymysql": "mysql"}.get((exc.name or "").split(".")[0])
        hint = f"install it with pip install 'kurier[{extra}]'" if extra else "install it beside Kurier"
        raise ConfigError(f"journal_url {redact_secrets(url, limit=None)} needs the database driver "
                          f"{exc.name!r}, which is not installed; {hint}") from exc
    except ArgumentError as exc:
        raise ConfigError(f"journal_url {redact_secrets(url, limit=None)} is not a database URL SQLAlchemy "
                          f"knows: {exc}") from exc


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets the API read while workers write; synchronous=FULL keeps commits durable
            # through a power cut, not just a process kill.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # A server that does not answer (a cut network, not a refused connection) must fail a try, not hang it.
    connect_args = {"connect_timeout": 10} if url.startswith(("postgresql", "mysql", "mariadb")) else {}
    # No pre-ping: it costs a round trip on every check-out, several per worker batch (a seventh of a
    # worker's time). A connection the server dropped fails its batch with a disconnect error instead,
    # which SQLAlchemy answers by discarding the whole pool, and the batch is retried (Transient).
    return create_engine(url, pool_size=10, max_overflow=10, connect_args=connect_args)


