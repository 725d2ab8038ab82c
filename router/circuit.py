"""A circuit breaker per destination: a dead peer is left alone instead of being hammered.

    closed ──(failure_threshold consecutive transient failures)──► open
    open ──(open_seconds passed)──► half-open: one delivery goes through as a probe
    half-open ──probe delivered──► closed        half-open ──probe failed──► open again

While the circuit is not closed the destination's workers take no delivery but the probe: the others
are rescheduled in the journal with their attempt counts unchanged, so a long outage burns the
retries of nothing that was not tried. The outage is logged once when it starts, at intervals while
it lasts and once when it ends, each time with the number of deliveries waiting.

Every worker of one destination in a process shares its breaker (it is thread-safe); each worker
process keeps its own, and finds an outage out by itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from schemas.envelope import utcnow

__all__ = ["CircuitBreaker", "CircuitSnapshot", "CircuitState"]

log = logging.getLogger("kurier.circuit")

#: How often an outage that goes on is logged again.
REMIND_SECONDS = 60.0


class CircuitState(IntEnum):
    """The values are those of the ``kurier_destination_circuit`` gauge."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class CircuitSnapshot:
    """A destination's breaker at one moment, for /metrics and the API."""

    destination: str
    state: CircuitState
    consecutive_failures: int
    failures: int  # transient failures since start
    opened_at: datetime | None  # when the current outage began (None when closed)
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class _OutageLog:
    """Tells an outage: once when it starts, every ``remind`` seconds while it lasts, once when it ends.

    Apart from the shared :class:`schemas.outage.Outage` because a breaker's outage is told in its own
    terms (failures in a row, the probe pause). The breaker decides under its lock *whether* to tell;
    the telling (which counts what is waiting in the journal) happens outside it, so a slow journal
    never holds up the destination's workers.
    """

    def __init__(self, what: str, waiting: Callable[[], int | None], remind: float) -> None:
        self.what, self.waiting, self.remind = what, waiting, remind
        self.last_told = 0.0

    def due(self, now: float) -> bool:
        if now - self.last_told < self.remind:
            return False
        self.last_told = now
        return True

    def _count(self) -> str:
        try:
            n = self.waiting()
        except Exception:  # the journal may be what is down; the outage line matters more than the count
            n = None
        return "" if n is None else f"; {n} deliveries waiting"

    def started(self, error: str, failures: int, pause: float) -> None:
        log.warning("%s is unavailable after %d failed deliveries in a row: %s. Deliveries to it are paused, "
                    "one probe every %s%s", self.what, failures, error, _duration(pause), self._count())

    def goes_on(self, lasted: float, error: str | None) -> None:
        log.warning("%s is still unavailable (for %s): %s%s", self.what, _duration(lasted),
                    error or "no delivery tried since", self._count())

    def ended(self, lasted: float) -> None:
        log.warning("%s is available again after %s%s", self.what, _duration(lasted), self._count())


class CircuitBreaker:
    """The breaker of one destination. ``clock`` is monotonic seconds (tests inject their own)."""

    def __init__(self, destination: str, *, failure_threshold: int = 5, open_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, waiting: Callable[[], int | None] = lambda: None,
                 remind_seconds: float = REMIND_SECONDS) -> None:
        if failure_threshold < 1 or open_seconds <= 0:
            raise ValueError("failure_threshold must be at least 1 and open_seconds more than 0")
        self.destination = destination
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._consecutive = 0
        self._failures = 0
        self._opened = 0.0  # clock() when last opened (the probe's timer)
        self._outage_began = 0.0  # clock() when the outage began (it may reopen several times)
        self._opened_at: datetime | None = None
        self._probing = False
        self._last_success: datetime | None = None
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._outage = _OutageLog(f"destination {destination!r}", waiting, remind_seconds)

    # -- what the delivery workers call ---------------------------------------------------------
    def allow(self) -> bool:
        """May a delivery be attempted now? When not closed, only one caller gets True: the probe."""
        with self._lock:
            if self._state == CircuitState.CLOSED:
                return True
            if self._state == CircuitState.OPEN and self._clock() - self._opened >= self.open_seconds:
                self._state = CircuitState.HALF_OPEN
                self._probing = False
            if self._state == CircuitState.HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def record_success(self) -> None:
        """The destination answered: a delivery went through, or was refused for good on its merits."""
        lasted = None
        with self._lock:
            self._consecutive = 0
            self._last_success = utcnow()
            if self._state != CircuitState.CLOSED:
                lasted = self._clock() - self._outage_began
                self._state, self._opened_at, self._probing = CircuitState.CLOSED, None, False
        if lasted is not None:
            self._outage.ended(lasted)

    def record_failure(self, error: str) -> None:
        """A delivery failed transiently (after its quick in-process retries)."""
        opened = None
        with self._lock:
            now = self._clock()
            self._consecutive += 1
            self._failures += 1
            self._last_error, self._last_error_at = error, utcnow()
            if self._state == CircuitState.HALF_OPEN:
                self._state, self._opened, self._probing = CircuitState.OPEN, now, False  # the probe failed
            elif self._state == CircuitState.CLOSED and self._consecutive >= self.failure_threshold:
                self._state, self._opened, self._outage_began = CircuitState.OPEN, now, now
                self._opened_at = self._last_error_at
                self._outage.last_told = now
                opened = self._consecutive
        if opened is not None:
            self._outage.started(error, opened, self.open_seconds)

    def release(self) -> None:
        """Give back a probe that was allowed but not attempted (e.g. the document was done already)."""
        with self._lock:
            self._probing = False

    def tick(self) -> None:
        """Called by the workers now and then: logs an outage that goes on, at intervals."""
        with self._lock:
            now = self._clock()
            if self._state == CircuitState.CLOSED or not self._outage.due(now):
                return
            lasted, error = now - self._outage_began, self._last_error
        self._outage.goes_on(lasted, error)

    # -- what operators see ---------------------------------------------------------------------
    @property
    def state(self) -> CircuitState:
        with self._lock:
            if self._state == CircuitState.OPEN and self._clock() - self._opened >= self.open_seconds:
                return CircuitState.HALF_OPEN  # a probe may go: that is what an operator should read
            return self._state

    def snapshot(self) -> CircuitSnapshot:
        state = self.state
        with self._lock:
            return CircuitSnapshot(self.destination, state, self._consecutive, self._failures, self._opened_at,
                                   self._last_success, self._last_error, self._last_error_at)
