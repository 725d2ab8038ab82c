"""The file drop's own errors: a full disk said as such, once, instead of a traceback per poll.

A full disk (``ENOSPC``, or a quota: ``EDQUOT``) is neither the document's fault nor a bug: every step
of a claim is undone or resumed, the document waits where it is, and it is retried once space is
freed. :class:`DiskFullLog` tells the operator when the disk fills, at intervals while it stays full,
and when space is back, instead of a warning per document per poll.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from pathlib import Path

from schemas.errors import Transient

__all__ = ["DISK_FULL", "DiskFullLog", "disk_full", "disk_full_error"]

DISK_FULL = "disk-full"
_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException | None) -> OSError | None:
    """The ``OSError`` saying the disk (or the quota) is full, if that is what ``exc`` is or was caused by."""
    seen = 0
    while exc is not None and seen < 10:  # a failed write may be masked by the close that followed it
        if isinstance(exc, OSError) and exc.errno in _ERRNOS:
            return exc
        if isinstance(exc, Transient) and exc.code == DISK_FULL:
            return exc.__cause__ if isinstance(exc.__cause__, OSError) else None
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _folder(exc: OSError, fallback: Path) -> Path:
    # The nearest folder that is there says which disk: the file itself is often a temporary name, and
    # its folder may be one the failed step has just undone.
    folder = Path(exc.filename).parent if exc.filename else fallback
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def disk_full_error(exc: OSError, fallback: Path) -> Transient:
    """A :class:`Transient` (code ``disk-full``) naming the folder on the full disk, in Bulgarian and English."""
    where = _folder(exc, fallback)
    quota = " (квотата е изчерпана / the quota is used up)" if exc.errno == errno.EDQUOT else ""
    error = Transient(
        f"дискът, на който е {where}, е пълен{quota}; освободете място и документът ще бъде опитан отново / "
        f"the disk holding {where} is full; free space and the document is retried",
        code=DISK_FULL,
    )
    error.__cause__ = exc
    return error


class DiskFullLog:
    """Says a full disk once when it is met, every ``every`` seconds while it lasts, and once when it ends."""

    def __init__(self, log: logging.Logger, name: str, clock: Callable[[], float], every: float = 300.0) -> None:
        self.log = log
        self.name = name
        self.every = every
        self._clock = clock
        self._since: float | None = None
        self._said_at = 0.0

    def met(self, error: Transient, waiting: Callable[[], int]) -> None:
        """The disk was found full (``error`` from :func:`disk_full_error`); ``waiting`` counts the documents held."""
        now = self._clock()
        if self._since is not None and now - self._said_at < self.every:
            return
        lasting = "" if self._since is None else f"still, for {now - self._since:.0f}s; "
        self._since = self._since if self._since is not None else now
        self._said_at = now
        self.log.warning("source %s: %s (%s%d document(s) waiting, none lost)", self.name, error, lasting, waiting())

    def ok(self) -> None:
        """A write succeeded: if the disk was full, say that space is back."""
        if self._since is not None:
            self.log.info("source %s: има отново място на диска / disk space is back after %.0fs; the waiting "
                          "documents are handled now", self.name, self._clock() - self._since)
            self._since = None
