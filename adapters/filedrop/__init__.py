"""File-drop adapter: legacy AIS exchange documents as an XML file plus attachments in a folder.

The source (:mod:`.inbox`) picks complete documents out of an inbox exactly once; the destination
(:mod:`.outbox`) writes documents into an outbox atomically and exactly once. The wire format is in
:mod:`.format` and documented for AIS vendors in ``FORMAT.md``; :mod:`.testing` writes sample documents.
"""

from __future__ import annotations

from adapters.filedrop.inbox import FiledropSource, SourceSettings, create_source
from adapters.filedrop.outbox import DestinationSettings, FiledropOutbox, create_destination

__all__ = [
    "DestinationSettings",
    "FiledropOutbox",
    "FiledropSource",
    "SourceSettings",
    "create_destination",
    "create_source",
]
