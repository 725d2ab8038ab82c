"""A claimed document read into an envelope: its XML parsed once, its files streamed into the payload store.

Only the checks the file drop alone can make are here: every listed file is present and a regular
file, its name is plain (:func:`~adapters.filedrop.format.check_file_name`), it matches the declared
``Size``/``SHA256``, the files fit the document's streaming budget, and the sender is the inbox's own
AIS. What every source's documents must satisfy (parties, EIK check digits, kind, attachment count and
total size) the hub checks once for all (:mod:`schemas.validation`).
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from adapters.filedrop.claims import WorkDir, complete
from adapters.filedrop.errors import disk_full, disk_full_error
from adapters.filedrop.format import Reading, read
from adapters.filedrop.settings import Settings
from adapters.filedrop.watch import Ready
from schemas.envelope import AttachmentRef, Envelope, Party
from schemas.errors import Refused
from schemas.limits import Limits
from schemas.payloads import PayloadStore

__all__ = ["DocumentReader"]


class DocumentReader:
    """Reads the documents of one inbox, with its settings (encoding, the AIS it speaks for) and the hub's limits."""

    def __init__(self, name: str, settings: Settings, limits: Limits, inbox: Path) -> None:
        self.name = name
        self.settings = settings
        self.limits = limits
        self.inbox = inbox

    def parse(self, data: bytes, what: str) -> Reading:
        """The one parse of a metadata file (the watcher's, or a resumed document's)."""
        return read(data, what=what, max_bytes=self.limits.max_xml_bytes, encoding=self.settings.encoding,
                    default_sender=self._default_sender())

    def envelope(self, work: WorkDir, xml: Path, ready: Ready | None, store: PayloadStore) -> Envelope:
        """The claimed document as an envelope; raise :class:`Refused` saying why not.

        A full disk (moving a file the claim left behind, or storing one) raises the ``disk-full``
        :class:`~schemas.errors.Transient`: nothing is lost, the document is read again later.
        """
        try:
            reading, size = self._reading(xml, ready)
            extras = [f"{xml.stem}.ready"] if self.settings.require_marker else []
            complete(self.inbox, work, reading.files or (), extras)
            if isinstance(reading.result, Refused):
                raise Refused(str(reading.result), code=reading.result.code)
            envelope = reading.result.envelope
            refs = self._attachments(work, xml.name, reading, self.limits.max_document_bytes - size, store)
        except OSError as exc:
            if (full := disk_full(exc)) is not None:
                raise disk_full_error(full, work.path) from exc
            raise
        sender = self._check_sender(envelope.sender, xml.name)
        return envelope.model_copy(update={"source": self.name, "attachments": refs, "sender": sender})

    def _reading(self, xml: Path, ready: Ready | None) -> tuple[Reading, int]:
        st = xml.stat()
        if ready is not None and ready.reading is not None and ready.signature == (st.st_size, st.st_mtime_ns):
            return ready.reading, st.st_size  # parsed in the inbox, unchanged since
        limit = self.limits.max_xml_bytes
        if st.st_size > limit:
            too_large = Refused(f"{xml.name}: larger than the {limit} bytes allowed for a metadata XML",
                                code="too-large")
            return Reading(None, too_large), st.st_size
        data = xml.read_bytes()
        return self.parse(data, xml.name), len(data)

    def _attachments(
        self, work: WorkDir, what: str, reading: Reading, budget: int, store: PayloadStore
    ) -> list[AttachmentRef]:
        assert not isinstance(reading.result, Refused)
        refs = []
        for spec in reading.result.attachments:
            path = work.attachments / spec.file_name
            if not os.path.lexists(path):
                raise Refused(
                    f"{what}: attachment {spec.file_name!r} is not in the inbox; write every "
                    "attachment beside the XML before the XML itself",
                    code="missing-attachment",
                )
            if path.is_symlink() or not path.is_file():
                raise Refused(f"{what}: attachment {spec.file_name!r} is not a regular file", code="invalid-document")
            try:
                stored = store.put_file(path, limit=max(budget, 0))
            except Refused as exc:
                raise Refused(
                    f"{what}: the document's files together exceed the {self.limits.max_document_bytes} "
                    f"bytes allowed (at {spec.file_name!r})",
                    code=exc.code,
                ) from None
            budget -= stored.size
            if (spec.size is not None and spec.size != stored.size) or (spec.sha256 and spec.sha256 != stored.sha256):
                raise Refused(
                    f"{what}: attachment {spec.file_name!r} is {stored.size} bytes with SHA-256 "
                    f"{stored.sha256}, not what <Size>/<SHA256> declare; was it copied completely?",
                    code="attachment-mismatch",
                )
            mime = spec.mime_type or mimetypes.guess_type(spec.file_name)[0] or "application/octet-stream"
            refs.append(AttachmentRef(file_name=spec.file_name, mime_type=mime, size=stored.size,
                                      sha256=stored.sha256, comment=spec.comment))
        return refs

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
