"""File-drop adapter: legacy AIS exchange documents as an XML file plus attachments in a folder.

One connection is one AIS: its inbox (:mod:`.inbox`) is the source, picking complete documents out
exactly once; its outbox (:mod:`.outbox`) is the destination, written atomically and exactly once.
Statuses travel as files too (:mod:`.statusfiles`): Kurier tells the AIS of each status change of a
document it submitted in ``<inbox>/status/``, and the AIS reports later statuses of documents it
received (registered with its number, rejected…) in ``<outbox>/status/``.
The wire formats are in :mod:`.format` and :mod:`.status`, documented for AIS vendors in ``FORMAT.md``;
:mod:`.testing` writes sample documents.
"""

from __future__ import annotations

import contextlib
from typing import Any

from adapters.base import AdapterContext, Connection, Intake, Source
from adapters.filedrop.inbox import FiledropSource
from adapters.filedrop.outbox import FiledropOutbox
from adapters.filedrop.settings import Settings
from adapters.filedrop.statusfiles import StatusFiles, StatusPoller
from schemas.status import StatusChange

__all__ = ["FiledropConnection", "FiledropOutbox", "FiledropSource", "Settings", "StatusPoller", "create", "roles"]


def roles(settings: Settings) -> set[str]:
    return {role for role, folder in (("source", settings.inbox), ("destination", settings.outbox)) if folder}


class _InboxAndStatuses(FiledropSource):
    """The inbox's poller, and beside it the poller of the statuses the AIS reports in ``<outbox>/status/``."""

    def __init__(self, *args: Any, statuses: StatusPoller, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statuses = statuses

    def start(self, intake: Intake) -> None:
        super().start(intake)
        self.statuses.start(intake)

    def stop(self) -> None:
        self.statuses.stop()
        super().stop()


class FiledropConnection(Connection):
    """An AIS's inbox and outbox folders, and its status files both ways."""

    destination: FiledropOutbox | None

    def __init__(self, name: str, *, source: Source | None, destination: FiledropOutbox | None,
                 status_files: StatusFiles | None) -> None:
        super().__init__(name, source=source, destination=destination)
        self.status_files = status_files

    def notify(self, change: StatusChange) -> None:
        """Write the change's status file into ``<inbox>/status/`` (only with ``status_files: true``)."""
        if self.status_files is not None:
            self.status_files.write(change)


def create(name: str, settings: Settings, ctx: AdapterContext) -> FiledropConnection:
    destination, statuses = None, None
    if settings.outbox:
        outbox = ctx.resolve_path(settings.outbox)
        # An unreachable share is not fatal here: deliver() reports it, and is retried, once it is back.
        with contextlib.suppress(OSError):
            outbox.mkdir(parents=True, exist_ok=True)
        destination = FiledropOutbox(name, settings, ctx.store, outbox)
        statuses = StatusPoller(name, settings, ctx, outbox / "status")
    # The source role is everything the AIS hands to Kurier: documents from its inbox, and the statuses
    # it reports of what it received (so an outbox-only connection has a source too: its status poller).
    source: Source | None = statuses
    status_files = None
    if settings.inbox:
        source = (FiledropSource(name, settings, ctx) if statuses is None
                  else _InboxAndStatuses(name, settings, ctx, statuses=statuses))
        if settings.status_files:
            folder = ctx.resolve_path(settings.inbox) / "status"
            with contextlib.suppress(OSError):  # as for the outbox: telling it is retried until it works
                folder.mkdir(parents=True, exist_ok=True)
            status_files = StatusFiles(name, folder, encoding=settings.encoding, fsync=settings.fsync)
    return FiledropConnection(name, source=source, destination=destination, status_files=status_files)
