"""A fake signer (kind ``testing``) for the tests and the demo: it signs nothing for real.

It can play a signing service that is down for a while (``transient_failures``: each document it
signs fails transiently that many times, then goes through) or one that refuses documents for good
(``permanent``), for the documents whose subject contains ``subject_contains`` (all when unset).
Real PAdES/XAdES signers, with a test PKI, come with the QES signing issue.

The tries are counted per signer name in this process (:func:`attempts`), whichever worker's signer
object made them, so a test can see how often each document was tried.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Envelope
from schemas.errors import Permanent, Transient
from schemas.payloads import PayloadStore
from signing.base import SignResult

__all__ = ["FakeSigner", "Settings", "attempts"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    transient_failures: int = Field(0, ge=0)  # per document: fail transiently this many times, then sign
    permanent: bool = False  # refuse the documents for good
    subject_contains: str | None = None  # only these documents fail; the others are signed at once


_ATTEMPTS: dict[str, Counter[str]] = {}
_LOCK = threading.Lock()


def attempts(name: str) -> Counter[str]:
    """Tries per envelope id of the testing signer called ``name`` in this process."""
    with _LOCK:
        return _ATTEMPTS.setdefault(name, Counter())


class FakeSigner:
    """Passes documents unchanged and says so ("fake signature"), or fails them as configured."""

    Settings: ClassVar[type[BaseModel]] = Settings

    def __init__(self, name: str, settings: BaseModel) -> None:
        assert isinstance(settings, Settings)
        self.name = name
        self.settings = settings

    def sign(self, envelope: Envelope, store: PayloadStore) -> SignResult:
        with _LOCK:
            counts = _ATTEMPTS.setdefault(self.name, Counter())
            counts[envelope.id] += 1
            tries = counts[envelope.id]
        wanted = self.settings.subject_contains
        if wanted is None or wanted in (envelope.subject or ""):
            if self.settings.permanent:
                raise Permanent(f"signer {self.name!r} refused the document: the signing certificate is revoked "
                                "(simulated by the testing signer)", code="signing-refused")
            if tries <= self.settings.transient_failures:
                raise Transient(f"signer {self.name!r}: the signing service does not answer (simulated, "
                                f"try {tries} of {self.settings.transient_failures + 1})", code="signer-unavailable")
        return SignResult(envelope, "ok", f"signer {self.name!r}: fake signature by the testing signer, "
                          f"not a QES (try {tries})")
