"""File-drop adapter: legacy AIS exchange documents as an XML file plus attachments in a folder.

One connection is one AIS: its inbox (:mod:`.inbox`) is the source, picking complete documents out
exactly once; its outbox (:mod:`.outbox`) is the destination, written atomically and exactly once.
The wire format is in :mod:`.format` and documented for AIS vendors in ``FORMAT.md``;
:mod:`.testing` writes sample documents.
"""

from __future__ import annotations

import contextlib

from adapters.base import AdapterContext, Connection
from adapters.filedrop.inbox import FiledropSource
from adapters.filedrop.outbox import FiledropOutbox
from adapters.filedrop.settings import Settings

__all__ = ["FiledropConnection", "FiledropOutbox", "FiledropSource", "Settings", "create", "roles"]


def roles(settings: Settings) -> set[str]:
    return {role for role, folder in (("source", settings.inbox), ("destination", settings.outbox)) if folder}


class FiledropConnection(Connection):
    """An AIS's inbox and outbox folders."""

    source: FiledropSource | None
    destination: FiledropOutbox | None


def create(name: str, settings: Settings, ctx: AdapterContext) -> FiledropConnection:
    source = FiledropSource(name, settings, ctx) if settings.inbox else None
    destination = None
    if settings.outbox:
        outbox = ctx.resolve_path(settings.outbox)
        # An unreachable share is not fatal here: deliver() reports it, and is retried, once it is back.
        with contextlib.suppress(OSError):
            outbox.mkdir(parents=True, exist_ok=True)
        destination = FiledropOutbox(name, settings, ctx.store, outbox)
    return FiledropConnection(name, source=source, destination=destination)
