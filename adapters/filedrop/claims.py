"""Claiming documents in an inbox: the rename that makes pick-up exactly-once, and the work-dir lock.

A document is claimed by ``os.rename`` of its XML into ``.work/<id>/``: of two pollers (threads,
processes or hosts sharing the folder) only one rename can succeed. The work dir is locked
(``flock``) while it is handled, so a poller resuming work left by a crash never takes a document
another poller is handling right now. The lock is created before the work dir becomes visible.

Every step can fail (a full disk fails any of them) and none strands a document: a step before the
XML's rename is undone, leaving the document in the inbox as it was; after it the document is claimed,
and what is not done yet (files still in the inbox, the note, the move to ``processed/`` or ``failed/``)
is done when it is next handled, by this process or after a restart.
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

__all__ = ["ATTACHMENTS", "ERROR_NOTE", "LOCK", "RECEIPT_NOTE", "WorkDir", "claim", "complete", "leftover_work",
           "lock_open", "lock_work", "write_whole"]

LOCK = ".lock"
_STALE_CLAIM = 3600.0  # seconds after which an unfinished claim folder is a crash's leftover
ATTACHMENTS = "attachments"  # attachments live in a sub-folder so no name can clash with the XML or notes
RECEIPT_NOTE, ERROR_NOTE = ".receipt.txt", ".error.txt"  # <stem><suffix>: accepted, refused


class WorkDir:
    """A claimed document in ``.work/<id>/``, locked by this poller until :meth:`release`."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def attachments(self) -> Path:
        return self.path / ATTACHMENTS

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def metadata(self) -> Path | None:
        """The document's XML: the only ``*.xml`` directly in the work dir."""
        found = [p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() == ".xml"]
        return found[0] if len(found) == 1 else None

    def note(self) -> Path | None:
        """The note of a document decided (accepted or refused) but not moved on yet, if there is one."""
        for path in self.path.iterdir():
            if not path.name.startswith(".") and path.name.endswith((RECEIPT_NOTE, ERROR_NOTE)):
                return path  # written whole or not at all (write_whole): its presence is the decision
        return None

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
        with contextlib.suppress(OSError):  # a lock file left in processed/ is harmless
            (target / LOCK).unlink()
        self.path = target
        self.release()
        return target


def lock_open(path: Path, target: Path, flags: int) -> int | None:
    """Open ``target`` and lock it for this poller; None when ``path`` is gone, or another poller holds it.

    ``path`` is the claimed thing (a work dir, a file) that its owner may finish and move away while we
    wait for the lock: it is checked again once the lock is held.
    """
    try:
        fd = os.open(target, flags, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
    if not path.exists():
        os.close(fd)
        return None
    return fd


def _lock(path: Path) -> int | None:
    """Open and lock ``path/.lock``; None when the dir is gone or another poller holds it."""
    return lock_open(path, path / LOCK, os.O_CREAT | os.O_RDWR)


def lock_work(path: Path) -> WorkDir | None:
    fd = _lock(path)
    return WorkDir(path, fd) if fd is not None else None


def claim(
    inbox: Path, work_root: Path, xml_name: str, attachments: Iterable[str], extras: Iterable[str] = ()
) -> WorkDir | None:
    """Move ``xml_name`` and its files into a new locked work dir; None if another poller won.

    ``attachments`` go to ``attachments/``, ``extras`` (the ``.ready`` marker) beside the XML. Raises the
    ``OSError`` of a failed step before the XML moved, after undoing what it did. A file that cannot be
    moved after the XML stays in the inbox: :func:`complete` moves it when the document is read.
    """
    token = f"{time.time_ns():x}-{secrets.token_hex(4)}"
    hidden = work_root / f".claim-{token}"
    hidden.mkdir(parents=True)
    fd: int | None = None
    try:
        (hidden / ATTACHMENTS).mkdir()  # before the XML moves: a claimed document never lacks it
        fd = _lock(hidden)
        if fd is None:  # cannot happen unless someone cleans up our fresh folder: leave the XML for the next poll
            shutil.rmtree(hidden, ignore_errors=True)
            return None
        work = WorkDir(work_root / token, fd)
        os.rename(hidden, work.path)  # visible only once locked
    except BaseException:
        shutil.rmtree(hidden, ignore_errors=True)
        if fd is not None:
            os.close(fd)
        raise
    try:
        os.rename(inbox / xml_name, work.path / xml_name)  # the claim: exactly one poller succeeds
    except BaseException as exc:
        shutil.rmtree(work.path, ignore_errors=True)  # holds nothing but the lock and an empty attachments/
        work.release()
        if isinstance(exc, FileNotFoundError):
            return None
        raise
    with contextlib.suppress(OSError):  # claimed all the same: complete() moves the rest when it is read
        _move(inbox, work, attachments, extras)
    return work


def complete(inbox: Path, work: WorkDir, files: Iterable[str], extras: Iterable[str] = ()) -> None:
    """Move into ``work`` the listed files still in the inbox: a crash or a full disk stopped the claim before."""
    work.attachments.mkdir(exist_ok=True)  # earlier versions made it only after the XML moved
    _move(inbox, work, (n for n in files if not os.path.lexists(work.attachments / n)),
          (n for n in extras if not os.path.lexists(work.path / n)))


def _move(inbox: Path, work: WorkDir, attachments: Iterable[str], extras: Iterable[str]) -> None:
    for names, folder in ((attachments, work.attachments), (extras, work.path)):
        for name in names:
            with contextlib.suppress(FileNotFoundError):  # not there: a missing attachment is refused when read
                os.rename(inbox / name, folder / name)


def write_whole(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a hidden temporary name, then a rename; nothing is left if it fails."""
    partial = path.with_name(f".{path.name}.part")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


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
            with contextlib.suppress(OSError):  # cleaning up can wait for the next poll
                if _age(entry) > _STALE_CLAIM and (fd := _lock(entry)) is not None:
                    shutil.rmtree(entry, ignore_errors=True)  # holds nothing but the lock file
                    os.close(fd)
        elif entry.is_dir() and not entry.name.startswith("."):
            found.append(entry)
    return found
