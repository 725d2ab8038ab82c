"""An in-memory destination: the test double the tests, the demo and ``kurier bench`` deliver into.

It honours the destination contract (idempotent by key) and records duplicates, so a test can prove
exactly-once delivery. ``fail_first`` makes the first N attempts fail transiently, to exercise retries.
"""

from __future__ import annotations

import threading
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import AdapterContext, Connection
from schemas.envelope import Envelope
from schemas.errors import DestinationUnavailable

__all__ = ["MemorySink", "Settings", "create", "roles", "sink"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fail_first: int = Field(0, ge=0)


class MemorySink:
    """Delivered envelopes by key; ``attempts`` counts every deliver() call per key."""

    def __init__(self, name: str, fail_first: int = 0) -> None:
        self.name = name
        self.fail_first = fail_first
        self.delivered: dict[str, Envelope] = {}
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._calls = 0

    def deliver(self, envelope: Envelope, key: str) -> str:
        with self._lock:
            self._calls += 1
            self.attempts[key] += 1
            if self._calls <= self.fail_first:
                raise DestinationUnavailable(f"{self.name}: simulated outage (attempt {self._calls})")
            if key in self.delivered:
                return "already delivered"
            self.delivered[key] = envelope
            return "stored in memory"

    def close(self) -> None:
        pass


_SINKS: dict[str, MemorySink] = {}
_SINKS_LOCK = threading.Lock()


def sink(name: str) -> MemorySink:
    """The sink of that name in this process (tests read what was delivered from here)."""
    with _SINKS_LOCK:
        return _SINKS.setdefault(name, MemorySink(name))


def roles(settings: Settings) -> set[str]:
    return {"destination"}


def create(name: str, settings: Settings, ctx: AdapterContext) -> Connection:
    target = sink(name)
    target.fail_first = settings.fail_first
    return Connection(name, destination=target)
