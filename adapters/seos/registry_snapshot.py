"""Where the registry cache keeps its last good copy: a small interface and a JSON file behind it.

A restarted hub reads the snapshot before the registry answers (or while it is down), so routing and
the receiver checks work from the first second. The JSON file is written atomically (a temporary file
in the same directory, fsync, rename, fsync of the directory): a crash leaves the old copy or the new
one, never half of one. A journal-table store can replace it behind :class:`SnapshotStore`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from adapters.seos.registry_model import Contact, Entity, EntityStatus, Service

__all__ = ["JsonSnapshotStore", "Snapshot", "SnapshotStore", "entity_from_json", "entity_to_json"]

log = logging.getLogger("kurier.adapters.seos")
_FORMAT = 1


@dataclass(frozen=True)
class Snapshot:
    """The registry as last seen: its entities, its own LastChange, and when it answered (UTC)."""

    entities: tuple[Entity, ...]
    registry_last_change: datetime | None  # the registry's clock: the ``since`` of the next GetNewRecords
    fetched_at: datetime  # when the registry last answered, full or incremental
    full_at: datetime  # when the last full GetAllRecords answered


class SnapshotStore(Protocol):
    def load(self) -> Snapshot | None: ...

    def save(self, snapshot: Snapshot) -> None: ...


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _unstamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def entity_to_json(e: Entity) -> dict[str, Any]:
    return {
        "entity_identifier": e.entity_identifier, "guid": e.guid, "parent_guid": e.parent_guid,
        "administrative_body_name": e.administrative_body_name, "status": int(e.status),
        "certificate_sn": e.certificate_sn,
        "contact": {"phone": e.contact.phone, "fax": e.contact.fax, "email": e.contact.email},
        "services": [{"guid": s.guid, "name": s.name, "uri": s.uri, "status": s.status, "type": s.type,
                      "version": s.version} for s in e.services],
        "last_change": _stamp(e.last_change),
    }


def entity_from_json(d: dict[str, Any]) -> Entity:
    return Entity(
        entity_identifier=d["entity_identifier"], guid=d["guid"], parent_guid=d.get("parent_guid", ""),
        administrative_body_name=d["administrative_body_name"], status=EntityStatus(d["status"]),
        certificate_sn=d.get("certificate_sn", ""), contact=Contact(**d.get("contact", {})),
        services=tuple(Service(**s) for s in d.get("services", [])), last_change=_unstamp(d.get("last_change")),
    )


class JsonSnapshotStore:
    """``seos-registry.json`` in the directory the caller gives (created if missing)."""

    NAME = "seos-registry.json"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.NAME

    def load(self) -> Snapshot | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {_FORMAT}")
            fetched_at = datetime.fromisoformat(data["fetched_at"])
            return Snapshot(
                entities=tuple(entity_from_json(e) for e in data["entities"]),
                registry_last_change=_unstamp(data.get("registry_last_change")),
                fetched_at=fetched_at, full_at=_unstamp(data.get("full_at")) or fetched_at,
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # A damaged copy is no copy: the next refresh fetches everything and overwrites it.
            log.warning("SEOS registry snapshot %s is unreadable (%s); waiting for the registry", self.path, exc)
            return None

    def save(self, snapshot: Snapshot) -> None:
        data = {
            "format": _FORMAT, "fetched_at": snapshot.fetched_at.isoformat(), "full_at": snapshot.full_at.isoformat(),
            "registry_last_change": _stamp(snapshot.registry_last_change),
            "entities": [entity_to_json(e) for e in snapshot.entities],
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.NAME}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a power cut only once the directory is synced
        finally:
            os.close(dir_fd)
