"""The file-drop destination: writes each document into an AIS's outbox folder atomically, exactly once.

Delivering key K:
1. stage the attachments and the XML in ``<outbox>/.kurier/tmp/<hash(K)>/`` (fsynced);
2. create the marker ``<outbox>/.kurier/sent/<hash(K)>`` listing the file names (the commit point);
3. rename the attachments into ``<outbox>/``, the XML last, so an AIS watching ``*.xml`` never sees
   half a document.
A redelivery of K finds the marker, finishes step 3 if a crash interrupted it, and writes nothing
new, even if the AIS has already taken the files away.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from adapters.filedrop.format import render
from adapters.filedrop.settings import Settings
from schemas.envelope import Envelope
from schemas.errors import DeliveryFailed, DestinationUnavailable
from schemas.payloads import PayloadStore

__all__ = ["FiledropOutbox"]


def _plain(name: str, taken: set[str], limit: int) -> str:
    """A file name safe in any file system, unique within the document, at most ``limit`` bytes."""
    cleaned = "".join("_" if c in '/\\:*?"<>|\0' or ord(c) < 32 else c for c in name).strip(" .") or "attachment"
    base, dot, ext = cleaned.rpartition(".") if "." in cleaned else (cleaned, "", "")
    candidate, n = cleaned, 1
    while candidate in taken or len(candidate.encode("utf-8")) > limit:
        n += 1
        suffix = f"-{n}{dot}{ext}"
        room = limit - len(suffix.encode("utf-8"))
        candidate = base.encode("utf-8")[:room].decode("utf-8", "ignore") + suffix
    taken.add(candidate)
    return candidate


class FiledropOutbox:
    """Delivers envelopes as file-drop documents into one folder."""

    def __init__(self, name: str, settings: Settings, store: PayloadStore, outbox: Path) -> None:
        self.name = name
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self._tmp = outbox / ".kurier" / "tmp"
        self._sent = outbox / ".kurier" / "sent"

    def deliver(self, envelope: Envelope, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()  # any key becomes a safe file name
        marker, staged = self._sent / digest[:2] / digest, self._tmp / digest
        try:
            if not self.outbox.is_dir():
                raise FileNotFoundError(2, "the outbox folder does not exist (share not mounted?)", str(self.outbox))
            if marker.exists():
                moved = self._publish(staged, marker)
                return f"already delivered to {self.outbox}" + (f" (finished moving {moved} files)" if moved else "")
            missing = [a.file_name for a in envelope.attachments if not self.store.exists(a.sha256)]
            if missing:
                raise DeliveryFailed(
                    f"{self.name}: attachments {missing} of {envelope.document_guid} are not in the "
                    "payload store any more; the document must be sent again"
                )
            names = self._stage(envelope, staged, digest)
            self._commit(marker, key, names)
            self._publish(staged, marker)
        except OSError as exc:  # disk full, share offline, permissions: retry later
            where = exc.filename or self.outbox
            raise DestinationUnavailable(f"{self.name}: cannot write to {where}: {exc.strerror or exc}") from exc
        return f"written to {self.outbox / names[-1]}"

    def close(self) -> None:
        pass

    def _stage(self, envelope: Envelope, staged: Path, digest: str) -> list[str]:
        if staged.exists():
            shutil.rmtree(staged)  # left by an attempt that crashed before its marker: start over
        staged.mkdir(parents=True)
        stem = envelope.document_guid.strip("{}")
        if (self.outbox / f"{stem}.xml").exists():  # the same document, delivered under another key, not yet taken
            stem = f"{stem}-{digest[:8]}"
        taken: set[str] = set()
        names = [f"{stem}_{_plain(a.file_name, taken, 250 - len(stem))}" for a in envelope.attachments]
        for ref, name in zip(envelope.attachments, names, strict=True):
            with self.store.open(ref.sha256) as src, open(staged / name, "wb") as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)
                self._sync(dst)
        xml_name = f"{stem}.xml"
        with open(staged / xml_name, "wb") as dst:
            dst.write(render(envelope, names, self.settings.encoding))
            self._sync(dst)
        self._sync_dir(staged)
        return [*names, xml_name]

    def _commit(self, marker: Path, key: str, names: Sequence[str]) -> None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        record = {"key": key, "files": list(names), "staged_at": datetime.now(UTC).isoformat(timespec="seconds")}
        partial = marker.with_name(marker.name + ".part")
        with open(partial, "w", encoding="utf-8") as fh:
            json.dump(record, fh, ensure_ascii=False)
            self._sync(fh)
        os.replace(partial, marker)  # the marker appears whole or not at all
        self._sync_dir(marker.parent)

    def _publish(self, staged: Path, marker: Path) -> int:
        """Move what is still staged into the outbox, the XML last; return how many files moved."""
        if not staged.exists():
            return 0
        names = json.loads(marker.read_text(encoding="utf-8"))["files"]
        moved = 0
        for name in names:  # attachments first, XML last: the order written in the marker
            if (staged / name).exists():
                os.replace(staged / name, self.outbox / name)
                moved += 1
        self._sync_dir(self.outbox)
        shutil.rmtree(staged, ignore_errors=True)
        return moved

    def _sync(self, fh: IO[Any]) -> None:
        if self.settings.fsync:
            fh.flush()
            os.fsync(fh.fileno())

    def _sync_dir(self, path: Path) -> None:
        if self.settings.fsync:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
