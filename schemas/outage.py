"""Outages told once: when they start, at intervals while they last, and when they end.

A database or broker that is down makes every document fail the same way, again and again. Logging each
failure buries the one fact an operator needs under thousands of lines (a 30-second PostgreSQL outage
once wrote 1,523 tracebacks for 236 documents). :class:`Outage` turns those failures into three kinds of
line: one WARNING when it starts (what is down and why), one WARNING every ``every`` seconds while it
lasts (with the documents waiting), and one INFO when it ends (how long, how many waited)::

    outage = Outage("source municipality: handing documents to the hub", log)
    try:
        submit(...)
    except Transient as exc:
        outage.failed(str(exc), waiting=len(kept))
    else:
        outage.recovered()

Used by the sources, the hub's intake, the workers and the sweeper; a destination that fails every
delivery uses one per destination (``quiet_for`` keeps a single failed try from being called an outage).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Outage"]


class Outage:
    """The state of one thing that can be down, and what has been said about it."""

    def __init__(self, what: str, logger: logging.Logger, *, every: float = 30.0, quiet_for: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.logger = logger
        self.every = every
        self.quiet_for = quiet_for  # say nothing until it has lasted this long (a blip is not an outage)
        self._clock = clock
        self._lock = threading.Lock()  # several source threads may report on the hub's one intake
        self._since: float | None = None
        self._told_at: float | None = None  # when the last line was written; None: nothing said yet
        self._reason = ""
        self._waiting = 0
        self._most = 0
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._since is not None

    @property
    def failures(self) -> int:
        """Failed tries since the outage started (0 when up)."""
        return self._failures

    def failed(self, reason: str, *, waiting: int | None = None) -> None:
        """A try failed for ``reason``; ``waiting``: how many documents wait because of it now, if known."""
        with self._lock:
            now = self._clock()
            if self._since is None:
                self._since, self._told_at, self._most = now, None, 0
                self._failures = 0
            self._failures += 1
            self._reason = reason
            if waiting is not None:
                self._waiting = waiting
                self._most = max(self._most, waiting)
            lasted = now - self._since
            if self._told_at is None:
                if lasted >= self.quiet_for:
                    self._told_at = now
                    self.logger.warning("%s is failing: %s%s", self.what, reason, self._counts(now=True))
            elif now - self._told_at >= self.every:
                self._told_at = now
                self.logger.warning("%s still failing after %s: %s%s", self.what, _duration(lasted), reason,
                                    self._counts(now=True))

    def recovered(self) -> None:
        """A try succeeded: the outage, if there was one, is over."""
        if self._since is None:  # the common case, without the lock: nothing was down
            return
        with self._lock:
            if self._since is None:
                return
            lasted = self._clock() - self._since
            if self._told_at is not None:
                self.logger.info("%s works again after %s (%d failed tries)%s", self.what, _duration(lasted),
                                 self._failures, self._counts(now=False))
            self._since = self._told_at = None
            self._waiting = self._most = self._failures = 0

    def _counts(self, *, now: bool) -> str:
        if now:
            return f"; {self._waiting} document(s) waiting" if self._waiting else ""
        return f"; at most {self._most} document(s) waited" if self._most else ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
