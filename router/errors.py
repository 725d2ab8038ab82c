"""Kurier's exceptions, one tree for the whole hub.

    KurierError
    ├── ConfigError          configuration is wrong: names the file, the key and the fix
    ├── Transient            retry later: network, 5xx, broker or database down, peer busy
    │   └── DestinationUnavailable
    └── Permanent            retrying cannot help: the document goes to an operator
        ├── Refused          the input is unacceptable (malformed/hostile XML, bad encoding,
        │                    invalid EIK, unknown recipient, sender not who it claims, too big)
        └── DeliveryFailed   a destination refused the document for good

Adapters translate their libraries' exceptions at their edge (``raise Transient(...) from exc``), so
the router only ever sees these, and tenacity retries only what is ``Transient``.
Every message is written for an operator: what happened, and why.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeliveryFailed",
    "DestinationUnavailable",
    "KurierError",
    "Permanent",
    "Refused",
    "Transient",
]


class KurierError(Exception):
    """Root of every error Kurier raises on purpose."""

    #: A short machine-readable code, journaled beside the message (e.g. "invalid-eik").
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, journal_id: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code
        #: Where the journal recorded this (an envelope id), when it did.
        self.journal_id = journal_id

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(KurierError):
    code = "config"


class Transient(KurierError):
    code = "transient"


class DestinationUnavailable(Transient):
    code = "destination-unavailable"


class Permanent(KurierError):
    code = "permanent"


class Refused(Permanent):
    code = "refused"


class DeliveryFailed(Permanent):
    code = "delivery-failed"
