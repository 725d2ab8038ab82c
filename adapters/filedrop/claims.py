"""Claiming documents in an inbox: the rename that makes pick-up exactly-once, and the work-dir lock.

A document is claimed by ``os.rename`` of its XML into ``.work/<id>/``: of two pollers (threads,
processes or hosts sharing the folder) only one rename can succeed. The work dir is locked
(``flock``) while it is handled, so a poller resuming work left by a crash never takes a document
another poller is handling right now. The lock is created before the work dir becomes visible.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

try:  # Kurier runs on Linux; without fcntl (Windows) a single poller per inbox is assumed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["ATTACHMENTS", "LOCK", "WorkDir", "claim", "leftover_work", "lock_work"]

LOCK = ".lock"
_STALE_CLAIM = 3600.0  # seconds after which an unfinished claim folder is a crash's leftover
ATTACHMENTS = "attachments"  # attachments live in a sub-folder so no name can clash with the XML or notes


class WorkDir:
    """A claimed document in ``.work/<id>/``, locked by this poller until :meth:`release`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def attachments(self) -> Path:
        return self.path / ATTACHMENTS

    def metadata(self) -> Path | None:
        """The document's XML: the only ``*.xml`` directly in the work dir."""
        found = [p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() == ".xml"]
        return found[0] if len(found) == 1 else None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def finish(self, parent: Path, stem: str) -> Path:
        """Move the whole work dir to ``parent/<UTC time>_<stem>/`` (one rename), then unlock it."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            target = parent / (f"{stamp}_{stem}" if n == 1 else f"{stamp}_{stem}-{n}")
            if target.exists():
                continue
            try:
                os.rename(self.path, target)
                break
            except OSError:
                if target.exists():  # taken between the check and the rename: try the next name
                    continue
                raise
        else:  # pragma: no cover
            raise OSError(f"no free name for {stem} in {parent}")
        with contextlib.suppress(FileNotFoundError):
            (target / LOCK).unlink()
        self.path = target
        self.release()
        return target


def _lock(path: Path) -> int | None:
    """Open and lock ``path/.lock``; None when the dir is gone or another poller holds it."""
    try:
        fd = os.open(path / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
    if not path.is_dir():  # finished and moved away by its owner while we waited for the lock
        os.close(fd)
        return None
    return fd


def lock_work(path: Path) -> WorkDir | None:
    fd = _lock(path)
    return WorkDir(path, fd) if fd is not None else None


def claim(
    inbox: Path, work_root: Path, xml_name: str, attachments: Iterable[str], extras: Iterable[str] = ()
) -> WorkDir | None:
    """Move ``xml_name`` and its files into a new locked work dir; None if another poller won.

    ``attachments`` go to ``attachments/``, ``extras`` (the ``.ready`` marker) beside the XML.
    """
    token = f"{time.time_ns():x}-{secrets.token_hex(4)}"
    hidden = work_root / f".claim-{token}"
    hidden.mkdir(parents=True)
    fd = _lock(hidden)
    if fd is None:  # cannot happen unless someone cleans up our fresh folder: leave the XML for the next poll
        return None
    work = WorkDir(work_root / token, fd)
    os.rename(hidden, work.path)  # visible only once locked
    try:
        os.rename(inbox / xml_name, work.path / xml_name)  # the claim: exactly one poller succeeds
    except FileNotFoundError:
        shutil.rmtree(work.path, ignore_errors=True)
        work.release()
        return None
    work.attachments.mkdir()
    for names, folder in ((attachments, work.attachments), (extras, work.path)):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.rename(inbox / name, folder / name)
    return work


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def leftover_work(work_root: Path) -> list[Path]:
    """Work dirs to resume (oldest first); also clears claim dirs a crash left empty."""
    if not work_root.is_dir():
        return []
    found = []
    for entry in sorted(work_root.iterdir()):
        if entry.name.startswith(".claim-"):
            # Only old ones: a fresh one may be another poller's, between its mkdir and its lock.
            if _age(entry) > _STALE_CLAIM and (fd := _lock(entry)) is not None:
                shutil.rmtree(entry, ignore_errors=True)  # holds nothing but the lock file
                os.close(fd)
        elif entry.is_dir() and not entry.name.startswith("."):
            found.append(entry)
    return found
