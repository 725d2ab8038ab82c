"""The file-drop source: takes complete documents out of an inbox folder, exactly once, never losing one.

Folders: ``<inbox>/`` (the AIS writes here), ``.work/`` (claimed, being handled; survives a crash),
``processed/`` and ``failed/`` (one sub-folder per document, with a note saying what happened).
"""

from __future__ import annotations

import logging
import mimetypes
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from adapters.base import AdapterContext, Intake, PollingSource
from adapters.filedrop.claims import ATTACHMENTS, LOCK, WorkDir, claim, leftover_work, lock_work
from adapters.filedrop.format import parse
from adapters.filedrop.settings import Settings
from adapters.filedrop.watch import InboxWatcher
from schemas.envelope import AttachmentRef, Envelope, Party
from schemas.errors import ConfigError, KurierError, Permanent, Refused, Transient
from schemas.outage import Outage
from schemas.payloads import PayloadStore

__all__ = ["BATCH", "FiledropSource"]

log = logging.getLogger("kurier.adapters.filedrop")

BATCH = 200  # documents per poll: keeps one poll short however large a backlog the AIS dumped


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
        self._watcher = InboxWatcher(
            self.inbox,
            settle_seconds=settings.settle_seconds,
            require_marker=settings.require_marker,
            encoding=settings.encoding,
            max_xml_bytes=ctx.limits.max_xml_bytes,
            clock=clock,
        )
        self._retry_at: dict[str, float] = {}  # work dir -> next try after a transient failure
        self._failures: dict[str, int] = {}
        self._outage = Outage(f"source {name}: handing documents to the hub", log, clock=clock)

    def poll_once(self, intake: Intake) -> int:
        done, now = 0, self._clock()
        # First whatever is left in .work/: an earlier crash, or a transient failure due for a retry.
        for path in leftover_work(self.work):
            if done >= BATCH:
                return done
            if self._retry_at.get(path.name, 0.0) <= now and (work := lock_work(path)) is not None:
                done += self._handle(work, intake)
        for ready in self._watcher.ready(BATCH - done):
            work = claim(self.inbox, self.work, ready.xml, ready.attachments, ready.extras)
            if work is not None:  # None: another poller renamed it first
                done += self._handle(work, intake)
        return done

    # -- handling one claimed document ---------------------------------------------------------
    def _handle(self, work: WorkDir, intake: Intake) -> int:
        """Handle a locked work dir; 1 when it reached processed/ or failed/, 0 when kept for later."""
        xml = work.metadata()
        if xml is None:
            attachments = list(work.attachments.iterdir()) if work.attachments.is_dir() else []
            if {p.name for p in work.path.iterdir()} <= {LOCK, ATTACHMENTS} and not attachments:
                shutil.rmtree(work.path, ignore_errors=True)  # a crash between mkdir and the claim rename
            else:
                log.error("source %s: %s holds no single metadata XML; an operator must look", self.name, work.path)
            work.release()
            return 0
        try:
            envelope = self._envelope(work, xml, intake.store)
        except Refused as exc:
            try:
                journal_id = intake.refuse(self.name, xml.name, exc)
            except Permanent as err:  # the journal will never take it: refused all the same, and said so
                log.error("source %s: the refusal of %s could not be journaled: %s", self.name, xml.name, err)
                return self._fail(work, xml, exc, None)
            except Exception:
                return self._later(work, xml, "could not journal the refusal")
            self._hub_works()
            return self._fail(work, xml, exc, journal_id)
        except Exception:
            return self._later(work, xml, "could not read it")
        try:
            receipt = intake.submit(envelope)
        except Permanent as exc:  # Refused, or the hub cannot take it for good: failed/ with the reason, not a loop
            return self._fail(work, xml, exc, exc.journal_id)
        except Exception as exc:  # Transient or a bug: the document stays claimed and is retried
            return self._later(work, xml, f"submit failed ({exc})")
        self._hub_works()
        note = (
            f"Документът е приет / Document accepted\n\nЖурнал / Journal id: {receipt.envelope_id}\n"
            f"DocumentGUID: {envelope.document_guid}\nПовторен / Duplicate: {receipt.duplicate}\n"
            f"Време / Time: {datetime.now(UTC).isoformat(timespec='seconds')}\n"
        )
        return self._finish(work, xml, self.processed, ".receipt.txt", note, envelope.id)

    def _envelope(self, work: WorkDir, xml: Path, store: PayloadStore) -> Envelope:
        limits = self.ctx.limits
        if xml.stat().st_size > limits.max_xml_bytes:
            raise Refused(
                f"{xml.name}: larger than the {limits.max_xml_bytes} bytes allowed for a metadata XML", code="too-large"
            )
        data = xml.read_bytes()
        parsed = parse(
            data,
            what=xml.name,
            max_bytes=limits.max_xml_bytes,
            encoding=self.settings.encoding,
            default_sender=self._default_sender(),
        )
        if len(parsed.attachments) > limits.max_attachments:
            raise Refused(
                f"{xml.name}: {len(parsed.attachments)} attachments, at most {limits.max_attachments} are allowed",
                code="too-many-attachments",
            )
        budget, refs = limits.max_document_bytes - len(data), []
        for spec in parsed.attachments:
            path = work.attachments / spec.file_name
            if not os.path.lexists(path) and (self.inbox / spec.file_name).is_file():
                os.rename(self.inbox / spec.file_name, path)  # claimed, then a crash before it was moved
            if not os.path.lexists(path):
                raise Refused(
                    f"{xml.name}: attachment {spec.file_name!r} is not in the inbox; write every "
                    "attachment beside the XML before the XML itself",
                    code="missing-attachment",
                )
            if path.is_symlink() or not path.is_file():
                raise Refused(
                    f"{xml.name}: attachment {spec.file_name!r} is not a regular file", code="invalid-document"
                )
            try:
                stored = store.put_file(path, limit=max(budget, 0))
            except Refused as exc:
                raise Refused(
                    f"{xml.name}: the document's files together exceed the {limits.max_document_bytes} "
                    f"bytes allowed (at {spec.file_name!r})",
                    code=exc.code,
                ) from None
            budget -= stored.size
            if (spec.size is not None and spec.size != stored.size) or (spec.sha256 and spec.sha256 != stored.sha256):
                raise Refused(
                    f"{xml.name}: attachment {spec.file_name!r} is {stored.size} bytes with SHA-256 "
                    f"{stored.sha256}, not what <Size>/<SHA256> declare; was it copied completely?",
                    code="attachment-mismatch",
                )
            mime = spec.mime_type or mimetypes.guess_type(spec.file_name)[0] or "application/octet-stream"
            refs.append(
                AttachmentRef(
                    file_name=spec.file_name,
                    mime_type=mime,
                    size=stored.size,
                    sha256=stored.sha256,
                    comment=spec.comment,
                )
            )
        sender = self._check_sender(parsed.envelope.sender, xml.name)
        return parsed.envelope.model_copy(update={"source": self.name, "attachments": refs, "sender": sender})

    def _default_sender(self) -> Party | None:
        s = self.settings
        if not (s.sender_eik or s.sender_guid):
            return None
        return Party(eik=s.sender_eik, guid=s.sender_guid, name=s.sender_name or "")

    def _check_sender(self, party: Party, what: str) -> Party:
        """Every sender is who it claims to be: an inbox speaks only for the AIS configured for it."""
        s = self.settings
        for label, configured, stated in (("EIK", s.sender_eik, party.eik), ("GUID", s.sender_guid, party.guid)):
            if configured and stated and configured.strip() != stated.strip():
                raise Refused(
                    f"{what}: <Sender><{label}> is {stated!r}, but inbox {self.name!r} speaks only for "
                    f"{configured!r}; a document may only be sent in the name of the AIS that owns the inbox",
                    code="sender-mismatch",
                )
        return Party(
            eik=party.eik or s.sender_eik, guid=party.guid or s.sender_guid, name=party.name or s.sender_name or ""
        )

    def _fail(self, work: WorkDir, xml: Path, error: KurierError, journal_id: str | None) -> int:
        log.warning("source %s: %s refused (%s, journal id %s): %s", self.name, xml.name, error.code, journal_id, error)
        note = (
            f"Документът е отказан / Document refused\n\nФайл / File: {xml.name}\nКод / Code: {error.code}\n"
            f"Причина / Reason: {error}\nЖурнал / Journal id: {journal_id or '-'}\n"
            f"Време / Time: {datetime.now(UTC).isoformat(timespec='seconds')}\nВход / Source: {self.name}\n\n"
            "Поправете документа и го поставете отново във входящата папка.\n"
            "Fix the document and drop it into the inbox again.\n"
        )
        return self._finish(work, xml, self.failed, ".error.txt", note, journal_id)

    def _finish(self, work: WorkDir, xml: Path, parent: Path, suffix: str, note: str, cid: str | None) -> int:
        name = work.path.name
        try:
            (work.path / f"{xml.stem}{suffix}").write_text(note, encoding="utf-8-sig")  # BOM: old Notepad
            target = work.finish(parent, xml.stem)
        except OSError:
            return self._later(work, xml, f"could not move it to {parent}")
        self._retry_at.pop(name, None)
        self._failures.pop(name, None)
        log.info("source %s: %s -> %s (id %s)", self.name, xml.name, target, cid)
        return 1

    def _later(self, work: WorkDir, xml: Path, why: str) -> int:
        """Keep the claimed document in .work/ and try again later, backing off up to a minute."""
        name = work.path.name
        failures = self._failures[name] = self._failures.get(name, 0) + 1
        delay = min(60.0, self.poll_interval * 2 ** min(failures, 6))
        self._retry_at[name] = self._clock() + delay
        error = sys.exc_info()[1]
        if isinstance(error, Transient):
            # The hub's journal or queue is down: every document fails alike. One outage, told when it
            # starts, every 30 s and when it ends; not a line per document per try.
            self._outage.failed(f"{error}; documents wait in {self.work} and are tried again",
                                waiting=len(self._retry_at))
            log.debug("source %s: %s %s; kept in %s, next try in %.0fs", self.name, xml.name, why, work.path, delay)
        else:
            log.warning(
                "source %s: %s %s; kept in %s, next try in %.0fs",
                self.name,
                xml.name,
                why,
                work.path,
                delay,
                exc_info=not isinstance(error, KurierError),
            )  # a traceback only for the unexpected
        work.release()
        return 0

    def _hub_works(self) -> None:
        """The hub took a document: an outage is over, and what waited for it is due now, not at its back-off."""
        if self._outage.down:
            self._outage.recovered()
            self._retry_at.clear()
