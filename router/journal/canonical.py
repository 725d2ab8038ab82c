"""The evidence rows the sealed journal covers, and the canonical bytes each is hashed as.

A row's bytes must be the same whichever database holds it and whichever driver reads it back: SQLite
returns naive datetimes, PostgreSQL aware ones in the session's zone, MariaDB naive ones to the second.
So every value is normalised (datetimes to UTC ISO 8601, always with microseconds, dates to ISO 8601) and the
row is written as compact JSON, prefixed by its table's name and led by its id: the hash binds a row's
content to where it is, so a row moved to another id is a changed row, not an intact one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Column, Date, DateTime, LargeBinary, Table

from router.journal.tables import events, status_changes, wire_messages

__all__ = ["EVIDENCE", "Evidence", "row_bytes", "row_hash"]


def _datetime(value: datetime) -> str:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat(timespec="microseconds")  # always with microseconds: 2026-12-01T10:00:00.000000+00:00


def _date(value: date) -> str:
    return value.isoformat()


def _binary(value: bytes) -> str:
    # A stored message's bytes enter the row's hash as their SHA-256: the same proof, a row of fixed size.
    return hashlib.sha256(bytes(value)).hexdigest()


def _normaliser(column: Column[Any]) -> Callable[[Any], str] | None:
    kind = column.type
    if isinstance(kind, DateTime):
        return _datetime
    if isinstance(kind, Date):
        return _date
    if isinstance(kind, LargeBinary) or isinstance(getattr(kind, "impl", None), LargeBinary):
        return _binary
    return None


@dataclass(frozen=True)
class Evidence:
    """One table of evidence rows: its key (ids only grow) and the columns that are sealed."""

    name: str
    table: Table
    key: Column[Any]
    columns: tuple[Column[Any], ...]  # the key first
    at: Column[Any]  # when the row was written: how long it may wait unsealed
    # (index, normaliser) of the date and time columns, worked out once: the sealer runs this for every row
    normalise: tuple[tuple[int, Callable[[Any], str]], ...]


def _evidence(table: Table, key: str, *, leave_out: Sequence[str] = ()) -> Evidence:
    cols = (table.c[key], *(c for c in table.c if c.name != key and c.name not in leave_out))
    normalise = tuple((i, fn) for i, c in enumerate(cols) if (fn := _normaliser(c)) is not None)
    return Evidence(table.name, table, table.c[key], cols, table.c["at"], normalise)


#: The sealed tables, in the order a block lists them. Stage events (deliveries' included) are written
#: once and never changed. A status row is too, apart from ``told_at``/``tell_error``: the notifier's
#: bookkeeping of telling the source, set later; sealing them would report every told status as changed.
#: ``deliveries`` is a row of current state, updated at each try; its history is in ``events``. SEOS
#: messages (``wire_messages``) are written once, their bytes and TLS certificate sealed by their SHA-256.
EVIDENCE: tuple[Evidence, ...] = (
    _evidence(events, "id"),
    _evidence(status_changes, "seq", leave_out=("told_at", "tell_error")),
    _evidence(wire_messages, "id"),
)

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def row_bytes(evidence: Evidence, row: Sequence[Any]) -> bytes:
    """The canonical bytes of one row (its values in ``evidence.columns`` order)."""
    values = [evidence.name, *row]
    for i, normalise in evidence.normalise:
        if values[i + 1] is not None:
            values[i + 1] = normalise(values[i + 1])
    return _encode(values).encode()


def row_hash(evidence: Evidence, row: Sequence[Any]) -> bytes:
    return hashlib.sha256(row_bytes(evidence, row)).digest()
