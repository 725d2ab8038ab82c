"""The file drop's contract harness (:mod:`adapters.contract`): the AIS on the other side of the folders.

The peer is a simulated AIS with an inbox it writes documents into and an outbox Kurier delivers to.
It is down when its outbox is unreachable (renamed away, a file in its place: a share not mounted).
A folder cannot refuse a document, so its permanent failure is the one the outbox has: a document
whose attachment the payload store lost. It reports statuses as ``<Status>`` files in
``<outbox>/status/`` and is told in ``<inbox>/status/`` (FORMAT.md §6).
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from adapters.contract import PeerContext, Told
from adapters.filedrop.format import NS
from adapters.filedrop.status import read_change, render_report
from adapters.filedrop.testing import SampleDocument, sample_pdf, write_document
from schemas.identifiers import new_guid, normalize_guid
from schemas.status import RecipientStatus, StatusReport
from schemas.xmlsafe import parse_xml

__all__ = ["FiledropPeer"]

_ENCODING = "windows-1251"  # a legacy AIS, as most are


class FiledropPeer:
    """An AIS exchanging documents with Kurier through an inbox and an outbox of its own."""

    refusal = "not in the payload store any more"

    def __init__(self, name: str, ctx: PeerContext) -> None:
        self.name, self.ctx = name, ctx
        self.inbox, self.outbox = ctx.root / "inbox", ctx.root / "outbox"
        self._away = ctx.root / "outbox.away"
        for folder in (self.inbox, self.outbox):  # the AIS's folders are there before Kurier is
            folder.mkdir(parents=True, exist_ok=True)

    def settings(self) -> dict[str, Any]:
        return {"adapter": "filedrop", "inbox": str(self.inbox), "outbox": str(self.outbox),
                "encoding": _ENCODING, "settle_seconds": 0.05, "poll_interval": 0.05, "fsync": False}

    def submit(self, subject: str) -> str:
        guid = new_guid()
        # A file of its own per document: losing one document's attachment must not touch another's.
        files = {f"молба-{guid[1:9]}.pdf": sample_pdf(subject, (guid,))}
        write_document(self.inbox, SampleDocument(document_guid=guid, subject=subject, attachments=files))
        return guid

    def held(self) -> Counter[str]:
        if not self.outbox.is_dir():
            return Counter()
        guids = []
        for path in self.outbox.glob("*.xml"):
            root = parse_xml(path.read_bytes(), what=path.name, max_bytes=10 * 1024 * 1024)
            guid = root.findtext(f"{{{NS}}}DocumentGUID")
            if guid:
                guids.append(normalize_guid(guid))
        return Counter(guids)

    def go_down(self) -> None:
        self.outbox.rename(self._away)
        self.outbox.write_text("not a folder: the share is not mounted", encoding="utf-8")

    def come_back(self) -> None:
        if self._away.exists():
            self.outbox.unlink()
            self._away.rename(self.outbox)

    def refuse(self, document_guid: str) -> None:
        self.ctx.lose(document_guid)

    def report(self, document_guid: str, status: RecipientStatus, *, reg_number: str | None = None,
               reg_date: date | None = None, reason: str | None = None) -> None:
        report = StatusReport(document_guid=document_guid, status=status, reg_number=reg_number,
                              reg_date=reg_date, reason=reason)
        folder = self.outbox / "status"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{document_guid.strip('{}')}-{secrets.token_hex(3)}.xml"
        _write(folder / name, render_report(report, _ENCODING))

    def told(self, document_guid: str) -> list[Told]:
        wanted = normalize_guid(document_guid)
        files = (read_change(p.read_bytes(), what=p.name) for p in (self.inbox / "status").glob("*.status.xml"))
        return [Told(t.status, t.connection, t.recipient_reg_number, t.recipient_reg_date, t.reason)
                for t in sorted(files, key=lambda t: t.seq) if normalize_guid(t.document_guid) == wanted]

    def close(self) -> None:
        self.come_back()


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.part")  # hidden until whole, as a careful AIS writes
    partial.write_bytes(data)
    os.replace(partial, path)
