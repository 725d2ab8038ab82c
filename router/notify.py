"""The notifier: tells each source of every status change of the documents it submitted.

The journal holds every change with whether its source was told. This thread (the hub's "sweep" role,
beside the sweeper) reads untold changes in batches, hands each to ``connections[source].notify`` in
the journal's order, and marks them told. A kill -9 between telling and marking means the change is
told again after the restart: adapters are idempotent by ``seq``. A source that answers
:class:`~schemas.errors.Transient` is left alone for a while, with back-off, and the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from adapters.base import Connection
from router.journal import Journal
from schemas.errors import Permanent, Transient, redact_secrets
from schemas.status import StatusChange

__all__ = ["Notifier"]

log = logging.getLogger("kurier.notify")


class _Outage:
    """A source that could not be told: since when, how often, and when to try it again."""

    def __init__(self, error: str, now: float) -> None:
        self.error, self.since, self.failures, self.retry_at = error, now, 0, now


class Notifier(threading.Thread):
    def __init__(self, journal: Journal, connections: Mapping[str, Connection], stop: threading.Event, *,
                 interval: float = 1.0, per_source: int = 200, first_delay: float = 1.0, max_delay: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="notifier", daemon=True)
        self.journal = journal
        self.connections = dict(connections)
        self.stop_event = stop
        self.interval = interval
        self.per_source = per_source
        self.first_delay, self.max_delay = first_delay, max_delay
        self._clock = clock
        self._wake = threading.Event()
        self._outages: dict[str, _Outage] = {}

    def wake(self) -> None:
        """Look for untold changes now rather than at the next interval (a report just came in)."""
        self._wake.set()

    def tell_once(self) -> int:
        """One round over every source not in back-off; returns how many changes were handled."""
        now = self._clock()
        sources = [name for name in self.connections
                   if name not in self._outages or self._outages[name].retry_at <= now]
        changes = self.journal.untold(sources, self.per_source) if sources else []
        told: list[int] = []
        failed: dict[int, str] = {}
        down: set[str] = set()
        for change in changes:  # oldest first within each source
            if change.source in down:
                continue  # this source failed in this round: the rest of its changes wait with it
            try:
                self.connections[change.source].notify(change)
            except Permanent as exc:
                # Telling it again cannot help (e.g. the change cannot be written in that system's format):
                # journaled as never told, with the reason, so an operator sees it on the document.
                log.error("could not tell %s of change %d of envelope %s (%s), and never will: %s", change.source,
                          change.seq, change.envelope_id, change.status.value, exc)
                failed[change.seq] = f"[{exc.code}] {exc}"
            except Exception as exc:  # Transient, or an adapter bug: keep it untold, try again later
                self._failed(change, exc)
                down.add(change.source)
            else:
                told.append(change.seq)
        for name in {c.source for c in changes} - down:
            self._recovered(name)
        if told or failed:
            self.journal.mark_told(told, failed)
        return len(told) + len(failed)

    def _failed(self, change: StatusChange, exc: Exception) -> None:
        now = self._clock()
        error = redact_secrets(f"{type(exc).__name__}: {exc}")
        outage = self._outages.get(change.source)
        if outage is None:
            outage = self._outages[change.source] = _Outage(error, now)
            # Once when it starts (with the traceback only for what is not a known transient error)...
            log.warning("cannot tell %s of status changes (%s); they wait in the journal and are told when it is "
                        "back", change.source, error, exc_info=not isinstance(exc, Transient))
        elif outage.failures % 10 == 0:  # ...then now and then while it lasts
            log.warning("still cannot tell %s of status changes, for %.0fs now (%d tries): %s", change.source,
                        now - outage.since, outage.failures + 1, error)
        outage.failures += 1
        outage.error = error
        outage.retry_at = now + min(self.max_delay, self.first_delay * 2 ** (outage.failures - 1))

    def _recovered(self, source: str) -> None:
        outage = self._outages.pop(source, None)
        if outage is not None:
            log.warning("%s is told of status changes again, after %.0fs (%d failed tries)", source,
                        self._clock() - outage.since, outage.failures)

    def run(self) -> None:
        pause = self.interval
        while not self.stop_event.is_set():
            try:
                handled = self.tell_once()
                pause = self.interval
            except Exception as exc:  # the journal is unavailable: it keeps what is owed; try again
                handled = 0
                log.warning("reading untold status changes failed, trying again in %.0fs: %s", pause,
                            redact_secrets(str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
                pause = min(pause * 2, 30.0)
            if handled:
                continue  # a backlog: go on at once
            self._wake.wait(pause)
            self._wake.clear()
        # One last round while the connections are still open, so a hub stopped right after a change
        # (an operator's restart, the demo) tells it now; whatever stays untold waits in the journal.
        try:
            self.tell_once()
        except Exception as exc:
            log.warning("status changes left untold at stop, told after the restart: %s", redact_secrets(str(exc)))
