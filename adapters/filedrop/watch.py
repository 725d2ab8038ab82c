"""Which documents in an inbox are complete: settled on disk, with every attachment they list.

Legacy AIS copy files in slowly, often over a network share: a file counts as complete once its
size and modification time stood still for ``settle_seconds`` (on our clock, not the share's).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adapters.filedrop.format import NS, referenced_files
from schemas.errors import Refused

__all__ = ["InboxWatcher", "Ready"]


@dataclass(frozen=True)
class Ready:
    """A complete document: its XML, the attachments present, and extras to move along (``.ready``)."""

    xml: str
    attachments: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)


@dataclass
class _Seen:
    signature: tuple[int, int]  # size, mtime_ns
    changed_at: float  # our clock when the signature last changed


class InboxWatcher:
    """Remembers what it saw in one inbox between polls."""

    def __init__(
        self,
        inbox: Path,
        *,
        settle_seconds: float,
        require_marker: bool,
        encoding: str,
        max_xml_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox = inbox
        self.settle_seconds = settle_seconds
        self.require_marker = require_marker
        self.encoding = encoding
        self.max_xml_bytes = max_xml_bytes
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        # XML name -> (size, mtime_ns) when read, the attachments it lists (None: unreadable), names our namespace
        self._refs: dict[str, tuple[tuple[int, int], list[str] | None, bool]] = {}

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
            self._refs.pop(name, None)

        def settled(name: str, wait: float = self.settle_seconds) -> bool:
            seen = self._seen.get(name)
            return seen is not None and now - seen.changed_at >= wait

        marker = self.require_marker
        refs: dict[str, tuple[list[str] | None, bool]] = {}
        for name in sorted(
            (n for n in entries if n.lower().endswith(".xml")), key=lambda n: (entries[n].st_mtime_ns, n)
        ):
            if settled(name) and (not marker or f"{name[:-4]}.ready" in entries):
                refs[name] = self._references(name, entries[name])
        referenced = {a for found, _ in refs.values() for a in found or ()}
        ready: list[Ready] = []
        for name, (found, ours) in refs.items():
            if len(ready) >= limit:
                break
            if name in referenced:
                continue  # an attachment whose name ends in .xml, not a document of its own
            extras = [f"{name[:-4]}.ready"] if marker else []
            if found is None:
                # Unreadable. Naming our namespace, it was meant as a document: refuse it now (the claim
                # leads there). Otherwise it may be an XML attachment whose document is not written yet.
                if ours or settled(name, self.patience):
                    ready.append(Ready(name, [], extras))
                continue
            if any(a in entries and not settled(a) for a in found):
                continue
            present = [a for a in found if a in entries]
            if len(present) == len(found) or settled(name, self.patience):  # a missing one is refused when handled
                ready.append(Ready(name, present, extras))
        return ready

    def _references(self, name: str, st: os.stat_result) -> tuple[list[str] | None, bool]:
        signature = (st.st_size, st.st_mtime_ns)
        cached = self._refs.get(name)
        if cached is not None and cached[0] == signature:
            return cached[1], cached[2]
        limit = self.max_xml_bytes
        found: list[str] | None = None
        try:
            with open(self.inbox / name, "rb") as fh:
                data = fh.read(limit + 1)  # never more: handling a larger one refuses it unread
        except FileNotFoundError:
            return [], False  # claimed by another poller meanwhile
        ours = NS.encode("ascii") in data[:65536]  # the namespace is declared on the root, near the top
        with contextlib.suppress(Refused):  # the full parse, once claimed, says why
            found = referenced_files(data, what=name, max_bytes=limit, encoding=self.encoding)
        self._refs[name] = (signature, found, ours)
        return found, ours
