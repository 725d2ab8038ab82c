"""Database errors translated at the journal's edge, so no SQLAlchemy or driver exception leaves it.

    data-level: DataError, IntegrityError, ProgrammingError,
    NotSupportedError, and SQLAlchemy's own errors (a value
    it cannot bind, a statement it cannot build)              → Permanent  code journal-refused
    connection-level: OperationalError, InterfaceError,
    DisconnectionError, pool timeout, and any other driver
    error (lost connection, deadlock, lock timeout, disk full) → Transient  code journal-unavailable

An unknown driver error counts as transient: retried (with a limit, and told as an outage) it costs
time; taken as permanent it would refuse good documents because of the database's trouble.

Callers then only decide between "try again later" and "refuse with the reason". Both kinds of driver
exception are recognised: SQLAlchemy's wrappers and the raw PEP 249 ones (the PostgreSQL ``COPY``
path talks to psycopg directly), by the standard names of their classes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from schemas.errors import KurierError, Permanent, Transient, redact_secrets

__all__ = ["JOURNAL_REFUSED", "JOURNAL_UNAVAILABLE", "is_database_error", "is_integrity_error",
           "refused_by_database", "translate", "translate_errors"]

JOURNAL_UNAVAILABLE = "journal-unavailable"
JOURNAL_REFUSED = "journal-refused"

# PEP 249 names: the same in psycopg, PyMySQL, sqlite3 and SQLAlchemy's wrappers of them.
_DATA_LEVEL = {"DataError", "IntegrityError", "ProgrammingError", "NotSupportedError"}
_DBAPI_ROOTS = {"DatabaseError", "InterfaceError"}

# What each write was doing, for a refusal's reason; reads are "the query <name>".
_WHAT = {
    "accept": "the received document(s)",
    "refuse": "the refusal of a document",
    "record_plans": "the processing outcome(s)",
    "record_deliveries": "the delivery outcome(s)",
    "record_wire": "the SEOS message's evidence",
    "retry": "the operator's retry",
    "touch": "the re-queue marks",
    "upgrade": "the schema migration",
}

C = TypeVar("C", bound=type)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def is_database_error(exc: BaseException) -> bool:
    """An exception of SQLAlchemy or of a database driver (not of Kurier, not of Python itself)."""
    return isinstance(exc, SQLAlchemyError) or (bool(_names(exc) & _DBAPI_ROOTS) and not isinstance(exc, OSError))


def refused_by_database(exc: BaseException) -> bool:
    """A database exception that retrying cannot cure (what :func:`translate` makes ``journal-refused``)."""
    return is_database_error(exc) and translate(exc).code == JOURNAL_REFUSED


def is_integrity_error(exc: BaseException) -> bool:
    return "IntegrityError" in _names(exc)


def _short(exc: BaseException) -> str:
    """The driver's own words, first line, without SQLAlchemy's SQL dump or any password."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = f"{args[1]} (error {args[0]})"  # PyMySQL's (code, message), not the tuple's repr
    else:
        text = str(orig).strip()
    first = (text.splitlines() or [type(orig).__name__])[0]
    # psycopg's COPY errors name the column only in their CONTEXT line: keep that part of it.
    context = next((line for line in text.splitlines() if line.startswith("CONTEXT:")), "")
    if context:
        first += " (" + context.removeprefix("CONTEXT:").strip().split(": ", 1)[0] + ")"
    return redact_secrets(first or type(orig).__name__, limit=240)


def translate(exc: BaseException, doing: str = "") -> KurierError:
    """The error tree's view of a database exception; ``doing`` is the journal method that met it."""
    names = _names(exc)
    invalidated = isinstance(exc, DBAPIError) and exc.connection_invalidated
    from_driver = isinstance(exc, DBAPIError) or bool(names & _DBAPI_ROOTS)
    connection_level = "DisconnectionError" in names or "TimeoutError" in names  # SQLAlchemy's pool
    if invalidated or connection_level or (from_driver and not names & _DATA_LEVEL):
        return Transient(f"the journal database is unavailable: {_short(exc)}", code=JOURNAL_UNAVAILABLE)
    what = _WHAT.get(doing, f"the query {doing}" if doing else "the request")
    return Permanent(f"the journal database refused {what}: {_short(exc)}", code=JOURNAL_REFUSED)


def _guard(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except KurierError:
            raise
        except Exception as exc:
            if not is_database_error(exc):
                raise
            raise translate(exc, name) from exc

    return guarded


def translate_errors(cls: C) -> C:
    """Class decorator: every public method (own or inherited from the journal's parts) translates errors.

    Applied once to :class:`~router.journal.Journal`, it covers methods a new part adds without anyone
    having to remember it.
    """
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        if inspect.isfunction(attr):
            setattr(cls, name, _guard(name, attr))
    return cls
