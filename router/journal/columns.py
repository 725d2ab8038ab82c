"""Values against the journal's columns: what does not fit is refused (accepted input) or cut (refusals).

SQLite stores a 14-character string in a ``VARCHAR(13)``; PostgreSQL and MariaDB refuse it (and
PostgreSQL any NUL character in text). So the journal checks values itself and behaves the same on every
database: a document whose value cannot be stored is refused, naming the field and the limit; and the
row of a *refusal* is cut to fit
(``…`` marks the cut), because a refusal must always be journaled (its full envelope is kept as JSON
in ``envelope_data``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, Table, Text

from schemas.errors import Permanent

__all__ = ["TEXT_CHARS", "cannot_hold", "cut", "fit_row", "fit_text"]

#: What an unbounded text column holds on every supported database: MySQL's TEXT takes 65,535 bytes,
#: and a character is at most 4 bytes in utf8mb4. Error texts and event details are cut to this.
TEXT_CHARS = 16_000

_limits: dict[str, list[tuple[str, int]]] = {}


def _bounded(table: Table) -> list[tuple[str, int]]:
    """(column, length) of the table's length-limited text columns; Text columns get :data:`TEXT_CHARS`."""
    if table.name not in _limits:
        found = []
        for column in table.columns:
            if isinstance(column.type, Text):
                found.append((column.name, TEXT_CHARS))
            elif isinstance(column.type, String) and column.type.length:
                found.append((column.name, column.type.length))
        _limits[table.name] = found
    return _limits[table.name]


def cut(value: str, length: int) -> str:
    """``value`` in at most ``length`` characters, NULs dropped (PostgreSQL refuses them in text)."""
    value = value.replace("\x00", "")
    return value if len(value) <= length else value[: length - 1] + "…"


def fit_text(value: str | None) -> str | None:
    """A free text (an error, an event's detail) cut to what every database's text column holds."""
    return value if value is None or (len(value) <= TEXT_CHARS and "\x00" not in value) else cut(value, TEXT_CHARS)


def fit_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``row`` whose strings fit ``table``'s columns."""
    fitted = dict(row)
    for name, length in _bounded(table):
        value = fitted.get(name)
        if isinstance(value, str):
            fitted[name] = cut(value, length)
    return fitted


def cannot_hold(table: Table, row: dict[str, Any], fields: dict[str, str] | None = None) -> Permanent | None:
    """The refusal for the first value of ``row`` that ``table`` cannot hold on every database, else None.

    Too long for its column, or holding a NUL character (PostgreSQL stores none in text). ``fields`` names
    columns as the document knows them (``recipient_eik`` → ``recipient.eik``).
    """
    for name, length in _bounded(table):
        value = row.get(name)
        if not isinstance(value, str):
            continue
        field = (fields or {}).get(name, name)
        if len(value) > length:
            return Permanent(f"the document's {field} is {len(value)} characters long; the journal holds at most "
                             f"{length}", code="journal-refused")
        if "\x00" in value:
            return Permanent(f"the document's {field} holds a NUL character (code 0), which the journal cannot "
                             "store; remove it", code="journal-refused")
    return None
