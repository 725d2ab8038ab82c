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

import re

__all__ = [
    "ConfigError",
    "DeliveryFailed",
    "DestinationUnavailable",
    "KurierError",
    "Permanent",
    "Refused",
    "Transient",
    "redact_secrets",
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


# user:password@ in any URL (amqp://, postgresql+psycopg://, https://), and password=... in DSNs/queries.
# The password runs to the *last* @ of the URL: people do put an unescaped @ or / in passwords.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^\s/@'\"<>]*:[^\s'\"<>]*@")
_KEY_VALUE_SECRET = re.compile(r"(?i)\b(?P<key>password|passwd|pwd|token|secret)=[^\s&;]+")
_MAX_ERROR_CHARS = 300


def redact_secrets(text: str, *, limit: int | None = _MAX_ERROR_CHARS) -> str:
    """Hide credentials that URLs and connection errors carry (``amqp://user:pass@host`` → ``amqp://***@host``).

    Everything Kurier logs or answers about a connection goes through here: no secret in logs.
    """
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _KEY_VALUE_SECRET.sub(r"\g<key>=***", text)
    return text if limit is None or len(text) <= limit else text[:limit] + "…"
