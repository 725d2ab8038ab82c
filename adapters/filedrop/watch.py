"""Which documents in an inbox are complete: settled on disk, with every attachment they list.

Legacy AIS copy files in slowly, often over a network share: a file counts as complete once its
size and modification time stood still for ``settle_seconds`` (on our clock, not the share's).

Which files belong to a document is known only by parsing its XML, so the watcher parses each settled
XML, once per version of the file, and the result travels with the claim (:attr:`Ready.reading`): the
document is not parsed again once claimed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adapters.filedrop.format import NS, Reading
from schemas.limits import MiB

__all__ = ["KEEP_XML_BYTES", "InboxWatcher", "ReadXml", "Ready"]

#: Parses a metadata file's bytes (named by its file name for messages): the inbox's settings applied.
ReadXml = Callable[[bytes, str], Reading]

#: Parsed documents waiting in the inbox are kept up to this many bytes of XML (about five times as much
#: memory). A backlog beyond it (tens of thousands of documents dumped at once) keeps only the file
#: lists of the rest, and those documents are parsed a second time when they are claimed.
KEEP_XML_BYTES = 16 * MiB


@dataclass(frozen=True)
class Ready:
    """A complete document: its XML, the attachments present, and extras to move along (``.ready``)."""

    xml: str
    attachments: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    reading: Reading | None = None  # the XML's parse, to use once claimed if the file is unchanged
    signature: tuple[int, int] = (-1, -1)  # the XML's size and mtime_ns when it was parsed


@dataclass
class _Seen:
    signature: tuple[int, int]  # size, mtime_ns
    changed_at: float  # our clock when the signature last changed


@dataclass(frozen=True)
class _Known:
    """An XML as last parsed: the files it lists (None: not a readable document), its parse if kept."""

    signature: tuple[int, int]
    files: list[str] | None
    ours: bool  # names our namespace: meant as a Kurier document, even if unreadable
    reading: Reading | None = None
    kept: int = 0  # bytes of XML counted against KEEP_XML_BYTES


class InboxWatcher:
    """Remembers what it saw in one inbox between polls."""

    def __init__(
        self,
        inbox: Path,
        *,
        settle_seconds: float,
        require_marker: bool,
        max_xml_bytes: int,
        read: ReadXml,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox = inbox
        self.settle_seconds = settle_seconds
        self.require_marker = require_marker
        self.max_xml_bytes = max_xml_bytes
        self._read = read
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._known: dict[str, _Known] = {}  # XML name -> what its last parse told
        self._kept = 0

    @property
    def waiting(self) -> int:
        """How many XML files were in the inbox at the last look."""
        return sum(1 for name in self._seen if name.lower().endswith(".xml"))

    @property
    def patience(self) -> float:
        """How long an XML must stand unchanged before a missing attachment (or its own foreign root) is refused."""
        return max(30.0, 10 * self.settle_seconds)

    def ready(self, limit: int) -> list[Ready]:
        """Up to ``limit`` complete documents, oldest first."""
        now = self._clock()
        entries: dict[str, os.stat_result] = {}
        with os.scandir(self.inbox) as listing:
            for entry in listing:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue  # our own folders, hidden temporaries, and symlinks (never read through)
                try:
                    entries[entry.name] = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # just claimed by another poller
        for name, st in entries.items():
            signature = (st.st_size, st.st_mtime_ns)
            seen = self._seen.get(name)
            if seen is None or seen.signature != signature:
                self._seen[name] = _Seen(signature, now)
        for name in set(self._seen) - set(entries):
            del self._seen[name]
            self._forget(name)

        def settled(name: str, wait: float = self.settle_seconds) -> bool:
            seen = self._seen.get(name)
            return seen is not None and now - seen.changed_at >= wait

        marker = self.require_marker
        known: dict[str, _Known] = {}
        for name in sorted(
            (n for n in entries if n.lower().endswith(".xml")), key=lambda n: (entries[n].st_mtime_ns, n)
        ):
            if settled(name) and (not marker or f"{name[:-4]}.ready" in entries):
                known[name] = self._know(name, entries[name])
        referenced = {a for k in known.values() for a in k.files or ()}
        ready: list[Ready] = []
        for name, k in known.items():
            if len(ready) >= limit:
                break
            if name in referenced:
                continue  # an attachment whose name ends in .xml, not a document of its own
            extras = [f"{name[:-4]}.ready"] if marker else []
            if k.files is None:
                # Unreadable. Naming our namespace, it was meant as a document: refuse it now (the claim
                # leads there). Otherwise it may be an XML attachment whose document is not written yet.
                if k.ours or settled(name, self.patience):
                    ready.append(Ready(name, [], extras, k.reading, k.signature))
                continue
            if any(a in entries and not settled(a) for a in k.files):
                continue
            present = [a for a in k.files if a in entries]
            if len(present) == len(k.files) or settled(name, self.patience):  # a missing one is refused when handled
                ready.append(Ready(name, present, extras, k.reading, k.signature))
        return ready

    def _know(self, name: str, st: os.stat_result) -> _Known:
        signature = (st.st_size, st.st_mtime_ns)
        cached = self._known.get(name)
        if cached is not None and cached.signature == signature:
            return cached
        self._forget(name)
        limit = self.max_xml_bytes
        try:
            with open(self.inbox / name, "rb") as fh:
                # Never more than the limit: a larger one is refused unread once claimed.
                data = fh.read(limit + 1 if st.st_size <= limit else 65536)
        except FileNotFoundError:
            return _Known(signature, [], False)  # claimed by another poller meanwhile
        ours = NS.encode("ascii") in data[:65536]  # the namespace is declared on the root, near the top
        if st.st_size > limit or len(data) > limit:
            found = _Known(signature, None, ours)
        else:
            reading = self._read(data, name)
            keep = self._kept + len(data) <= KEEP_XML_BYTES
            found = _Known(signature, reading.files, ours, reading if keep else None, len(data) if keep else 0)
            self._kept += found.kept
        self._known[name] = found
        return found

    def _forget(self, name: str) -> None:
        gone = self._known.pop(name, None)
        if gone is not None:
            self._kept -= gone.kept
