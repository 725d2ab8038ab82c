"""The two ways in: ``parse_message`` for a message in memory, ``read_message`` for a large one on disk.

``parse_message`` goes through :func:`schemas.xmlsafe.parse_xml` (size, encoding, no DOCTYPE) and is
for what fits the XML limit (the reference caps a message at 10 MB). ``read_message`` streams: lxml's
iterparse cannot, since it keeps each element's text whole (and, hardened with ``huge_tree=False``,
refuses a text node over 10 MB), so a parser *target* gets the text in the pieces the parser reads,
and each ``AttBody`` is base64-decoded piece by piece into a temporary file, then into the payload
store. Everything else becomes a small tree, read by the same code as ``parse_message``'s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO, Any, BinaryIO

from lxml import etree

from schemas.errors import Permanent, Refused
from schemas.limits import Limits
from schemas.payloads import PayloadStore, StoredFile
from schemas.seos.model import SEOS_NS, Message
from schemas.seos.reader import WHITESPACE, decode_base64, message_from_tree
from schemas.xmlsafe import parse_xml

__all__ = ["message_from_xml", "parse_message", "read_message"]

_WHAT = "the SEOS message"
_FEED = 64 * 1024
_ATT_BODY = tuple(f"{{{SEOS_NS}}}{n}" for n in ("Message", "Body", "DocumentRegistrationRequest", "Document",
                                                 "DocAttachmentList", "Attachment", "AttBody"))
_HOSTILE = ("a DOCTYPE (and so any entity declaration) is not allowed in a SEOS message; entities can read "
            "local files or expand into gigabytes")


def parse_message(data: bytes, *, max_bytes: int = Limits().max_xml_bytes,
                  store: PayloadStore | None = None) -> Message:
    """Parse a SEOS message held in memory; its attachments' bodies go into ``store``.

    Raises :class:`Refused` naming what is malformed, missing or hostile.
    """
    return message_from_xml(parse_xml(data, what=_WHAT, max_bytes=max_bytes), store=store)


def message_from_xml(root: etree._Element, *, store: PayloadStore | None = None) -> Message:
    """The Message of an already parsed (hardened) tree, for a caller that also validates or verifies it."""

    def bodies(element: etree._Element, _n: int, path: str) -> StoredFile:
        if store is None:
            raise Permanent(f"{path}: a payload store is needed to keep the message's attachments")
        return store.put_bytes(decode_base64(element.text or "", path))

    return message_from_tree(root, bodies)


def read_message(source: BinaryIO | Path, *, store: PayloadStore, max_bytes: int,
                 tmp_dir: Path | None = None) -> Message:
    """Parse a SEOS message from a file or stream, its attachments streamed into ``store`` in bounded memory.

    ``max_bytes`` bounds the whole message as read (base64 makes it a third larger than the files).
    """
    if isinstance(source, Path):
        with source.open("rb") as fh:
            return read_message(fh, store=store, max_bytes=max_bytes, tmp_dir=tmp_dir)
    target = _Target(store, tmp_dir)
    parser = etree.XMLParser(target=target, resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_comments=True, remove_pis=True)
    read = 0
    try:
        try:
            while chunk := source.read(_FEED):
                read += len(chunk)
                if read > max_bytes:
                    raise Refused(f"{_WHAT}: more than the {max_bytes} bytes allowed", code="too-large")
                parser.feed(chunk)
            root = parser.close()
        except etree.XMLSyntaxError as exc:
            kinds = {e.type_name for e in exc.error_log}
            if any(k.startswith("ERR_ENTITY") or k == "ERR_RESOURCE_LIMIT" for k in kinds):
                raise Refused(f"{_WHAT}: {_HOSTILE}", code="hostile-xml") from None
            raise Refused(f"{_WHAT}: not well-formed XML: {exc.msg}", code="malformed-xml") from None
        bodies = target.bodies
        return message_from_tree(root, lambda _el, n, _path: bodies[n])
    finally:
        target.discard()


class _Target:
    """An lxml parser target: a tree for everything but the attachments' bodies, which are streamed."""

    def __init__(self, store: PayloadStore, tmp_dir: Path | None) -> None:
        self._builder = etree.TreeBuilder()
        self._store, self._tmp_dir = store, tmp_dir
        self._path: list[str] = []
        self._body: _Base64File | None = None
        self.bodies: list[StoredFile] = []
        self._failed = False

    # Two arguments: lxml calls a three-argument start() with the namespace map differently (and the tree
    # needs no prefixes, since it is read by namespace).
    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._path.append(tag)
        if tuple(self._path) == _ATT_BODY:  # only a body where the schema puts one is streamed
            self._body = _Base64File(self._tmp_dir, len(self.bodies) + 1)
        self._builder.start(tag, attrib)

    def data(self, text: str) -> None:
        if self._body is None:
            self._builder.data(text)
            return
        try:
            self._body.feed(text)
        except BaseException:
            self._failed = True
            raise

    def end(self, tag: str) -> etree._Element:
        if self._body is not None:
            body, self._body = self._body, None
            try:
                self.bodies.append(body.store(self._store))
            except BaseException:
                self._failed = True
                raise
        self._path.pop()
        return self._builder.end(tag)

    def doctype(self, *_args: Any) -> None:
        self._failed = True
        raise Refused(f"{_WHAT}: {_HOSTILE}", code="hostile-xml")

    def comment(self, _text: str) -> None:  # comments and processing instructions carry nothing for us
        pass

    def pi(self, _target: str, _data: str | None = None) -> None:
        pass

    def close(self) -> etree._Element | None:
        if self._failed:
            return None  # lxml then raises the callback's own error; the builder's would hide it
        return self._builder.close()

    def discard(self) -> None:
        if self._body is not None:
            self._body.close()


class _Base64File:
    """Decodes base64 text as it arrives into a temporary file (the store takes whole streams)."""

    def __init__(self, tmp_dir: Path | None, n: int) -> None:
        # Closed by store() or close(): it outlives this call, so no with-block.
        self._file: IO[bytes] = tempfile.TemporaryFile(dir=tmp_dir)  # noqa: SIM115
        self._rest = ""
        self._path = f"Message/Body/DocumentRegistrationRequest/Document/DocAttachmentList/Attachment[{n}]/AttBody"

    def feed(self, text: str) -> None:
        text = self._rest + text.translate(WHITESPACE)
        whole = len(text) // 4 * 4  # base64 decodes in quads: keep the tail for the next piece
        self._rest = text[whole:]
        self._file.write(decode_base64(text[:whole], self._path))

    def store(self, store: PayloadStore) -> StoredFile:
        try:
            if self._rest:
                raise Refused(f"SEOS message: {self._path} is not valid base64 (its length is not a multiple of 4)",
                              code="invalid-seos")
            self._file.seek(0)
            return store.put_stream(self._file)  # type: ignore[arg-type]
        finally:
            self._file.close()

    def close(self) -> None:
        self._file.close()
