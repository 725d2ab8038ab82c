"""The file-drop source: takes complete documents out of an inbox folder, exactly once, never losing one.

Folders: ``<inbox>/`` (the AIS writes here), ``.work/`` (claimed, being handled; survives a crash),
``processed/`` and ``failed/`` (one sub-folder per document, with a note saying what happened).

A poll claims and reads up to :data:`BATCH` documents, submits them to the hub together
(:meth:`~adapters.base.Intake.submit_many`: one journal transaction), then finishes each: the receipt
to ``processed/``, the refusal to ``failed/``. Whatever fails on the way (the hub unavailable, a full
disk) keeps a document claimed in ``.work/`` and it is tried again, backing off. A document already
decided is then only moved on, not submitted again; after a restart, the hub recognises a resubmitted
document (DocumentGUID and content) and accepts it once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from adapters.base import AdapterContext, Intake, PollingSource, Receipt
from adapters.filedrop.claims import (
    ATTACHMENTS,
    ERROR_NOTE,
    LOCK,
    RECEIPT_NOTE,
    WorkDir,
    claim,
    leftover_work,
    lock_work,
    write_whole,
)
from adapters.filedrop.errors import DiskFullLog, disk_full, disk_full_error
from adapters.filedrop.reading import DocumentReader
from adapters.filedrop.settings import Settings
from adapters.filedrop.watch import InboxWatcher, Ready
from schemas.envelope import Envelope
from schemas.errors import ConfigError, KurierError, Permanent, Refused, Transient
from schemas.outage import Outage

__all__ = ["BATCH", "FiledropSource"]

log = logging.getLogger("kurier.adapters.filedrop")

BATCH = 200  # documents per poll and per submit: keeps one poll short however large a backlog the AIS dumped


@dataclass
class _Claimed:
    work: WorkDir
    xml: Path
    ready: Ready | None = None  # what the watcher saw, with the XML's parse; None when resumed from .work/


@dataclass(frozen=True)
class _Decision:
    """Where a handled document goes, and its note (None once written)."""

    parent: Path
    suffix: str
    note: str | None
    cid: str | None = None


class FiledropSource(PollingSource):
    """Polls one inbox folder; see FORMAT.md for what an AIS writes there."""

    def __init__(
        self, name: str, settings: Settings, ctx: AdapterContext, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.name = name
        self.settings = settings
        self.ctx = ctx
        self.poll_interval = settings.poll_interval
        assert settings.inbox, "a file-drop source needs an inbox"
        self.inbox = ctx.resolve_path(settings.inbox)
        self.work, self.processed, self.failed = self.inbox / ".work", self.inbox / "processed", self.inbox / "failed"
        try:
            for folder in (self.inbox, self.work, self.processed, self.failed):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"sources.{name}: cannot use inbox {self.inbox}: {exc.strerror}; "
                "check the path and that the hub may write there"
            ) from exc
        self._clock = clock
        self._reader = DocumentReader(name, settings, ctx.limits, self.inbox)
        self._watcher = InboxWatcher(
            self.inbox,
            settle_seconds=settings.settle_seconds,
            require_marker=settings.require_marker,
            max_xml_bytes=ctx.limits.max_xml_bytes,
            read=self._reader.parse,
            clock=clock,
        )
        self._retry_at: dict[str, float] = {}  # work dir (or inbox XML) -> next try after a failure
        self._failures: dict[str, int] = {}
        self._decided: dict[str, _Decision] = {}  # work dir -> decided, but its note or move failed
        self._disk = DiskFullLog(log, name, clock)
        self._outage = Outage(f"source {name}: handing documents to the hub", log, clock=clock)

    def poll_once(self, intake: Intake) -> int:
        claimed: list[_Claimed] = []
        try:
            done = self._resume(claimed)
            self._claim(claimed)
            return done + self._submit(claimed, intake)
        finally:
            for item in claimed:
                if item.work.locked:  # left by an unexpected error: keep it for a later try, never lock it away
                    self._back_off(item.work.path.name, item.work)

    # -- gathering a batch ---------------------------------------------------------------------
    def _resume(self, claimed: list[_Claimed]) -> int:
        """Take up what is left in .work/: an earlier crash, or a failure whose retry is due."""
        done, now = 0, self._clock()
        for path in leftover_work(self.work):
            if len(claimed) >= BATCH:
                break
            if self._retry_at.get(path.name, 0.0) > now:
                continue
            try:
                work = lock_work(path)
            except OSError as exc:  # its lock file is gone, and creating one failed
                self._back_off(path.name)
                if (full := disk_full(exc)) is not None:
                    self._disk.met(disk_full_error(full, path), self._waiting)
                else:
                    log.warning("source %s: cannot lock %s (%s); trying again later", self.name, path, exc)
                continue
            if work is None:  # another poller is handling it
                continue
            xml = work.metadata()
            if xml is None:
                self._no_metadata(work)
                continue
            decision = self._decided.get(path.name) or self._decision_on_disk(work)
            if decision is not None:
                done += self._finish(work, xml, decision)
            else:
                claimed.append(_Claimed(work, xml))
        return done

    def _decision_on_disk(self, work: WorkDir) -> _Decision | None:
        note = work.note()  # written whole, so its presence is the decision (a restart since)
        if note is None:
            return None
        if note.name.endswith(RECEIPT_NOTE):
            return _Decision(self.processed, RECEIPT_NOTE, None)
        return _Decision(self.failed, ERROR_NOTE, None)

    def _no_metadata(self, work: WorkDir) -> None:
        attachments = list(work.attachments.iterdir()) if work.attachments.is_dir() else []
        if {p.name for p in work.path.iterdir()} <= {LOCK, ATTACHMENTS} and not attachments:
            shutil.rmtree(work.path, ignore_errors=True)  # a crash between the claim's mkdir and its rename
        else:
            log.error("source %s: %s holds no single metadata XML; an operator must look (looked at again "
                      "in an hour)", self.name, work.path)
            self._retry_at[work.path.name] = self._clock() + 3600
        work.release()

    def _claim(self, claimed: list[_Claimed]) -> None:
        now = self._clock()
        for ready in self._watcher.ready(BATCH - len(claimed)):
            if self._retry_at.get(ready.xml, 0.0) > now:
                continue
            try:
                work = claim(self.inbox, self.work, ready.xml, ready.attachments, ready.extras)
            except OSError as exc:  # every step undone: the document is in the inbox as it was
                delay = self._back_off(ready.xml)
                if (full := disk_full(exc)) is not None:
                    self._disk.met(disk_full_error(full, self.work), self._waiting)
                    break  # the others would not fit either
                log.warning("source %s: %s could not be claimed (%s); left in the inbox, next try in %.0fs",
                            self.name, ready.xml, exc, delay)
                continue
            if work is not None:  # None: another poller renamed it first
                self._retry_at.pop(ready.xml, None)
                self._failures.pop(ready.xml, None)
                claimed.append(_Claimed(work, work.path / ready.xml, ready))

    # -- reading, submitting, finishing ----------------------------------------------------------
    def _submit(self, claimed: list[_Claimed], intake: Intake) -> int:
        done, full = 0, False
        batch: list[tuple[_Claimed, Envelope]] = []
        for item in claimed:
            if full:  # the disk is full: the rest wait without trying
                self._back_off(item.work.path.name, item.work)
                continue
            try:
                envelope = self._reader.envelope(item.work, item.xml, item.ready, intake.store)
            except Refused as exc:
                done += self._refuse(item, exc, intake)
            except Exception as exc:
                full = disk_full(exc) is not None
                self._later(item.work, item.xml, "could not read it")
            else:
                batch.append((item, envelope))
        if not batch:
            return done
        try:
            results = intake.submit_many([envelope for _, envelope in batch])
        except Permanent as exc:
            if len(batch) == 1:  # the hub cannot take it for good: failed/ with the reason, not a loop
                return done + self._fail(batch[0][0].work, batch[0][0].xml, exc, exc.journal_id)
            # Refusals come back per document; a whole batch refused means one of them the hub cannot
            # even answer for: each goes in alone, so only that one fails.
            return done + sum(self._submit([item], intake) for item, _ in batch)
        except Exception as exc:  # Transient or a bug: the whole batch stays claimed and is submitted again
            self._later_all([item for item, _ in batch], f"submit failed ({exc})")
            return done
        self._hub_works()
        for (item, envelope), result in zip(batch, results, strict=True):
            if isinstance(result, Receipt):
                done += self._accepted(item, envelope, result)
            else:
                done += self._fail(item.work, item.xml, result, result.journal_id)
        return done

    def _refuse(self, item: _Claimed, error: Refused, intake: Intake) -> int:
        try:
            journal_id = intake.refuse(self.name, item.xml.name, error)
        except Permanent as err:  # the journal will never take it: refused all the same, and said so
            log.error("source %s: the refusal of %s could not be journaled: %s", self.name, item.xml.name, err)
            return self._fail(item.work, item.xml, error, None)
        except Exception:
            return self._later(item.work, item.xml, "could not journal the refusal")
        self._hub_works()
        return self._fail(item.work, item.xml, error, journal_id)

    def _accepted(self, item: _Claimed, envelope: Envelope, receipt: Receipt) -> int:
        note = (
            f"Документът е приет / Document accepted\n\nЖурнал / Journal id: {receipt.envelope_id}\n"
            f"DocumentGUID: {envelope.document_guid}\nПовторен / Duplicate: {receipt.duplicate}\n"
            f"Време / Time: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
        )
        return self._finish(item.work, item.xml, _Decision(self.processed, RECEIPT_NOTE, note, envelope.id))

    def _fail(self, work: WorkDir, xml: Path, error: KurierError, journal_id: str | None) -> int:
        log.warning("source %s: %s refused (%s, journal id %s): %s", self.name, xml.name, error.code, journal_id, error)
        note = (
            f"Документът е отказан / Document refused\n\nФайл / File: {xml.name}\nКод / Code: {error.code}\n"
            f"Причина / Reason: {error}\nЖурнал / Journal id: {journal_id or '-'}\n"
            f"Време / Time: {datetime.now(UTC).isoformat(timespec='seconds')}\nВход / Source: {self.name}\n\n"
            "Поправете документа и го поставете отново във входящата папка.\n"
            "Fix the document and drop it into the inbox again.\n"
        )
        return self._finish(work, xml, _Decision(self.failed, ERROR_NOTE, note, journal_id))

    def _finish(self, work: WorkDir, xml: Path, decision: _Decision) -> int:
        name = work.path.name
        try:
            if decision.note is not None:
                # The BOM is for old Notepad; written whole, so a note present after a restart is the decision.
                write_whole(work.path / f"{xml.stem}{decision.suffix}", decision.note.encode("utf-8-sig"))
                decision = _Decision(decision.parent, decision.suffix, None, decision.cid)
            target = work.finish(decision.parent, xml.stem)
        except OSError:
            self._decided[name] = decision  # decided: next time it is only moved on
            return self._later(work, xml, f"could not move it to {decision.parent}")
        self._decided.pop(name, None)
        self._retry_at.pop(name, None)
        self._failures.pop(name, None)
        self._disk.ok()  # a note written: space for documents (a claim may take none, so it does not tell)
        log.info("source %s: %s -> %s (id %s)", self.name, xml.name, target, decision.cid)
        return 1

    # -- keeping documents for later -------------------------------------------------------------
    def _later(self, work: WorkDir, xml: Path, why: str) -> int:
        """Keep the claimed document in .work/ and try again later, backing off up to a minute."""
        delay = self._back_off(work.path.name, work)
        error = sys.exc_info()[1]
        if (full := disk_full(error)) is not None:  # said once for all documents, not per document and poll
            self._disk.met(disk_full_error(full, work.path), self._waiting)
            return 0
        if isinstance(error, Transient):  # the hub is down: one outage for every document, not a line each
            self._hub_down(error)
            log.debug("source %s: %s %s; kept in %s, next try in %.0fs", self.name, xml.name, why, work.path, delay)
            return 0
        log.warning(
            "source %s: %s %s; kept in %s, next try in %.0fs",
            self.name,
            xml.name,
            why,
            work.path,
            delay,
            exc_info=not isinstance(error, KurierError),
        )  # a traceback only for the unexpected
        return 0

    def _later_all(self, items: Sequence[_Claimed], why: str) -> None:
        """Keep a whole batch claimed in .work/ and submit it again later: one log line for all of it."""
        delay = max(self._back_off(item.work.path.name, item.work) for item in items)
        error = sys.exc_info()[1]
        if isinstance(error, Transient):
            self._hub_down(error)
            return
        log.warning(
            "source %s: %d document(s) %s; kept in %s, next try in %.0fs",
            self.name,
            len(items),
            why,
            self.work,
            delay,
            exc_info=not isinstance(error, KurierError),
        )

    def _hub_down(self, error: Transient) -> None:
        # The hub's journal or queue is down: every document fails alike. One outage, told when it
        # starts, every 30 s and when it ends.
        self._outage.failed(f"{error}; documents wait in {self.work} and are tried again", waiting=self._waiting())

    def _hub_works(self) -> None:
        """The hub took documents: an outage is over, and what waited for it is due now, not at its back-off."""
        if self._outage.down:
            self._outage.recovered()
            self._retry_at.clear()

    def _back_off(self, key: str, work: WorkDir | None = None) -> float:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = min(60.0, self.poll_interval * 2 ** min(failures, 6))
        self._retry_at[key] = self._clock() + delay
        if work is not None:
            work.release()
        return delay

    def _waiting(self) -> int:
        with contextlib.suppress(OSError):
            return self._watcher.waiting + sum(1 for e in os.scandir(self.work) if not e.name.startswith("."))
        return self._watcher.waiting
