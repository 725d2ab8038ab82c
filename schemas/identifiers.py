"""Identifiers of Bulgarian administration: EIK/BULSTAT and SEOS GUIDs (domain.md §5, §3)."""

from __future__ import annotations

import functools
import re
import uuid

__all__ = ["InvalidIdentifier", "eik_is_valid", "new_guid", "normalize_guid", "validate_eik"]


class InvalidIdentifier(ValueError):
    """An identifier is malformed; the message says which and why (shown to operators)."""


_GUID_RE = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")


def _check_digit(digits: str, weights: tuple[int, ...], fallback: tuple[int, ...]) -> int:
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    if total == 10:
        total = sum(int(d) * w for d, w in zip(digits, fallback, strict=True)) % 11
        if total == 10:
            total = 0
    return total


@functools.lru_cache(maxsize=4096)  # a hub sees the same few hundred administrations again and again
def _eik_problem(value: str) -> str | None:
    # ASCII digits only: str.isdigit() would let full-width and other Unicode digits through.
    if not re.fullmatch(r"[0-9]{9}|[0-9]{13}", value):
        return f"EIK/BULSTAT {value!r} must be 9 or 13 digits"
    if _check_digit(value[:8], (1, 2, 3, 4, 5, 6, 7, 8), (3, 4, 5, 6, 7, 8, 9, 10)) != int(value[8]):
        return f"EIK/BULSTAT {value!r} has a wrong check digit (9th digit)"
    if len(value) == 13 and _check_digit(value[8:12], (2, 7, 3, 5), (4, 9, 5, 7)) != int(value[12]):
        return f"EIK/BULSTAT {value!r} has a wrong check digit (13th digit)"
    return None


def eik_is_valid(value: str) -> bool:
    """True when ``value`` is a 9- or 13-digit EIK/BULSTAT with correct check digits."""
    return _eik_problem(value) is None


def validate_eik(value: str) -> str:
    """Return the EIK stripped of blanks, or raise :class:`InvalidIdentifier` saying what is wrong."""
    cleaned = value.strip()
    problem = _eik_problem(cleaned)
    if problem:
        raise InvalidIdentifier(problem)
    return cleaned


def normalize_guid(value: str) -> str:
    """SEOS writes GUIDs in braces, hex of either case; store them one way: ``{lowercase}``."""
    match = _GUID_RE.match(value.strip())
    if not match:
        raise InvalidIdentifier(f"GUID {value!r} is not of the form {{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}}")
    return "{" + match.group(1).lower() + "}"


def new_guid() -> str:
    return "{" + str(uuid.uuid4()) + "}"
