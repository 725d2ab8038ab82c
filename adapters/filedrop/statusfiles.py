"""Status files on disk: telling the submitting AIS (``<inbox>/status/``), hearing the recipient AIS
(``<outbox>/status/``). The format is :mod:`.status`; FORMAT.md §6 documents both for AIS vendors.

Telling change ``seq`` happens once, like a delivery (:mod:`.outbox`): the file is staged in
``status/.kurier/tmp/``, the marker ``status/.kurier/told/<bucket>/<seq>`` is the commit point, then the
file is renamed into ``status/``. Told again after a crash, a change whose marker exists only finishes
the rename, so the AIS never sees a change twice, even after it took the first file away.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from adapters.base import AdapterContext, Intake, PollingSource
from adapters.filedrop.claims import lock_open
from adapters.filedrop.settings import Settings
from adapters.filedrop.status import parse_report, render_change
from schemas.errors import Permanent, Transient
from schemas.status import StatusChange

__all__ = ["StatusFiles", "StatusPoller"]

log = logging.getLogger("kurier.adapters.filedrop")

_BATCH = 200  # status files per poll: keeps one poll short however many the AIS wrote at once
_BUCKET = 10_000  # markers per folder
_KEEP_BUCKETS = 100  # markers of the last million changes are kept; older ones can never be told again


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


class StatusFiles:
    """Writes a status file for each change into one AIS's ``<inbox>/status/``, once per ``seq``."""

    def __init__(self, name: str, folder: Path, *, encoding: str, fsync: bool) -> None:
        self.name, self.folder, self.encoding, self.fsync = name, folder, encoding, fsync
        self._tmp, self._told = folder / ".kurier" / "tmp", folder / ".kurier" / "told"

    def write(self, change: StatusChange) -> Path:
        """Write the status file of ``change`` (or finish writing it); raise :class:`Transient` if the
        folder cannot be written (share offline, disk full), to be told again later."""
        final = self.folder / f"{change.document_guid.strip('{}')}.{change.seq}.status.xml"
        marker = self._told / str(change.seq // _BUCKET) / str(change.seq)
        staged = self._tmp / f"{change.seq}.part"
        try:
            if not marker.exists():
                self._tmp.mkdir(parents=True, exist_ok=True)
                with open(staged, "wb") as fh:
                    fh.write(render_change(change, self.encoding))
                    self._sync(fh.fileno())
                self._commit(marker)
            with contextlib.suppress(FileNotFoundError):  # already moved (by us before a crash, or a peer)
                os.replace(staged, final)
                self._sync_dir(self.folder)
        except OSError as exc:
            where = exc.filename or self.folder
            raise Transient(f"{self.name}: cannot write a status file to {where}: {exc.strerror or exc}") from exc
        return final

    def _commit(self, marker: Path) -> None:
        bucket = marker.parent
        if not bucket.is_dir():
            bucket.mkdir(parents=True, exist_ok=True)
            self._prune(int(bucket.name))
        fd = os.open(marker, os.O_CREAT | os.O_WRONLY, 0o644)  # empty: its existence is the commit
        os.close(fd)
        self._sync_dir(bucket)

    def _prune(self, current: int) -> None:
        for old in self._told.iterdir():
            if old.name.isdigit() and int(old.name) < current - _KEEP_BUCKETS:
                shutil.rmtree(old, ignore_errors=True)

    def _sync(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)

    def _sync_dir(self, path: Path) -> None:
        if self.fsync:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _lock(path: Path) -> int | None:
    """Open and lock a claimed file; None when it is gone or another poller holds it."""
    return lock_open(path, path, os.O_RDONLY)


class StatusPoller(PollingSource):
    """Takes the status files a recipient AIS writes into ``<outbox>/status/`` and reports them to the hub.

    A file is taken once settled (size and time unchanged for ``settle_seconds``), by a rename into
    ``.work/`` (of several pollers only one succeeds), then moved to ``processed/`` or ``failed/`` with
    a note, like documents. While the hub cannot take the report yet it waits in ``.work/``.
    """

    def __init__(self, name: str, settings: Settings, ctx: AdapterContext, folder: Path, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.name, self.settings, self.ctx, self.folder = name, settings, ctx, folder
        self.poll_interval = settings.poll_interval
        self.work, self.processed, self.failed = folder / ".work", folder / "processed", folder / "failed"
        self._folders()
        self._clock = clock
        self._seen: dict[str, tuple[tuple[int, int], float]] = {}  # name -> (size, mtime_ns), since when
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def _folders(self) -> bool:
        """Make the folders (again: a share mounted late, a folder removed); False while that cannot be done."""
        if self.work.is_dir() and self.processed.is_dir() and self.failed.is_dir():
            return True
        try:
            for path in (self.work, self.processed, self.failed):
                path.mkdir(parents=True, exist_ok=True)
        except OSError:  # an unmounted share is not fatal: polling waits for it
            return False
        return True

    def poll_once(self, intake: Intake | None = None) -> int:
        if not self._folders():
            return 0
        done, now = 0, self._clock()
        for path in sorted(self.work.iterdir()):  # a crash's leftovers, and reports the hub could not take yet
            if path.is_file() and self._retry_at.get(path.name, 0.0) <= now:
                done += self._take(path)
        for name in self._settled(now):
            target = self.work / f"{time.time_ns():x}-{secrets.token_hex(3)}_{name}"
            try:
                os.rename(self.folder / name, target)  # the claim: exactly one poller succeeds
            except FileNotFoundError:
                continue
            done += self._take(target)
        return done

    def _settled(self, now: float) -> list[str]:
        current: dict[str, tuple[int, int]] = {}
        with os.scandir(self.folder) as listing:
            for entry in listing:
                if entry.name.startswith(".") or not entry.name.lower().endswith(".xml"):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        current[entry.name] = (st.st_size, st.st_mtime_ns)
        for name, signature in current.items():
            if name not in self._seen or self._seen[name][0] != signature:
                self._seen[name] = (signature, now)
        self._seen = {n: s for n, s in self._seen.items() if n in current}
        wait = self.settings.settle_seconds
        return sorted(n for n, (_, since) in self._seen.items() if now - since >= wait)[:_BATCH]

    def _take(self, path: Path) -> int:
        fd = _lock(path)
        if fd is None:
            return 0
        try:
            return self._handle(path)
        finally:
            os.close(fd)

    def _handle(self, path: Path) -> int:
        name = path.name.split("_", 1)[1]
        try:
            report = parse_report(path.read_bytes(), what=name, max_bytes=self.ctx.limits.max_xml_bytes,
                                  encoding=self.settings.encoding)
            self.ctx.statuses.report(self.name, report)
        except Permanent as exc:
            log.warning("connection %s: status file %s refused (%s): %s", self.name, name, exc.code, exc)
            note = (f"Статусът е отказан / Status refused\n\nФайл / File: {name}\nКод / Code: {exc.code}\n"
                    f"Причина / Reason: {exc}\nВреме / Time: {datetime.now(UTC).isoformat(timespec='seconds')}\n\n"
                    "Поправете файла и го запишете отново в папката status/.\n"
                    "Fix the file and write it into the status/ folder again.\n")
            return self._finish(path, name, self.failed, ".error.txt", note)
        except Exception as exc:  # Transient (the hub cannot take it yet), an unreadable share, or a bug
            return self._later(path, name, exc)
        note = (f"Статусът е приет / Status accepted\n\nФайл / File: {name}\nDocumentGUID: {report.document_guid}\n"
                f"Статус / Status: {report.status.value} ({report.status.label})\n"
                f"Време / Time: {datetime.now(UTC).isoformat(timespec='seconds')}\n")
        return self._finish(path, name, self.processed, ".receipt.txt", note)

    def _finish(self, path: Path, name: str, parent: Path, suffix: str, note: str) -> int:
        stem = name[:-4] if name.lower().endswith(".xml") else name
        try:
            target = parent / f"{_stamp()}_{stem}"
            for n in range(2, 1000):
                if not target.exists():
                    break
                target = parent / f"{_stamp()}_{stem}-{n}"
            target.mkdir(parents=True)
            (target / f"{stem}{suffix}").write_text(note, encoding="utf-8-sig")  # BOM: old Notepad
            os.rename(path, target / name)
        except OSError as exc:
            return self._later(path, name, exc)
        self._retry_at.pop(path.name, None)
        self._failures.pop(path.name, None)
        log.info("connection %s: status file %s -> %s", self.name, name, target)
        return 1

    def _later(self, path: Path, name: str, exc: Exception) -> int:
        failures = self._failures[path.name] = self._failures.get(path.name, 0) + 1
        delay = min(60.0, self.poll_interval * 2 ** min(failures, 6))
        self._retry_at[path.name] = self._clock() + delay
        log.warning("connection %s: status file %s kept in %s, next try in %.0fs: %s", self.name, name, self.work,
                    delay, exc, exc_info=not isinstance(exc, Transient | OSError))  # a traceback for the unexpected
        return 0
