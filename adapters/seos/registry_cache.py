"""The hub's copy of the SEOS registry, with the look-ups routing and the receiver checks need.

Refreshed from the registry client: everything once (GetAllRecords), then only what changed
(GetNewRecords since the registry's own LastChange), with a full refresh again every ``full_every``
so that nothing missed by an incremental answer lives forever. When the registry is down or answers
nonsense the last good copy stays in use and its age is reported; the copy is persisted through a
:class:`SnapshotStore` so that a restarted hub has it before the registry answers.

Look-ups: EIK → entities (active first), GUID → entity, certificate serial (any case or padding) →
entity, EIK → GUID → service URI. Before any copy exists they raise Transient, never "unknown": a
hub that just started must not refuse a sender it simply has not heard of yet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from adapters.seos.registry_model import DOCUMENT_FLOW_SERVICE, Entity, normalize_serial
from adapters.seos.registry_snapshot import Snapshot, SnapshotStore
from adapters.seos.registry_wire import Records
from schemas.errors import KurierError, Refused, Transient
from schemas.identifiers import normalize_guid

__all__ = ["RefreshResult", "RegistryCache", "RegistrySource"]

log = logging.getLogger("kurier.adapters.seos")


class RegistrySource(Protocol):
    """What the cache needs of the registry (the client, or anything that answers the same)."""

    def get_all_records(self) -> Records: ...

    def get_new_records(self, since: datetime) -> Records: ...


@dataclass(frozen=True)
class RefreshResult:
    mode: Literal["full", "incremental"]
    changed: int = 0  # entities the answer brought
    error: KurierError | None = None  # why the refresh failed; the previous copy is still in use

    @property
    def ok(self) -> bool:
        return self.error is None


def _rank(e: Entity) -> tuple[bool, datetime]:
    return (e.active, e.last_change or datetime.min.replace(tzinfo=UTC))


class _Index:
    """Immutable look-up tables over one set of entities (swapped whole, so readers need no lock)."""

    def __init__(self, entities: Iterable[Entity]) -> None:
        self.by_guid = {e.guid: e for e in entities}
        self.by_eik: dict[str, list[Entity]] = {}
        self.by_serial: dict[str, Entity] = {}
        for e in sorted(self.by_guid.values(), key=_rank, reverse=True):  # active and newest first
            self.by_eik.setdefault(e.entity_identifier, []).append(e)
            if e.certificate_sn:
                self.by_serial.setdefault(e.certificate_sn, e)


class RegistryCache:
    """The registry copy; thread-safe (refreshes are serialised, look-ups read an immutable index)."""

    def __init__(self, source: RegistrySource, store: SnapshotStore | None = None, *,
                 full_every: timedelta = timedelta(hours=24),
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.source = source
        self.store = store
        self.full_every = full_every
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._index = _Index(())
        self.last_error: KurierError | None = None

    # -- the copy --------------------------------------------------------------------------------

    def load(self) -> bool:
        """Take the persisted copy, if any (at start-up, before the registry answers)."""
        snapshot = self.store.load() if self.store else None
        if snapshot is None:
            return False
        with self._lock:
            self._install(snapshot, persist=False)
        log.info("SEOS registry: %d entities from the snapshot of %s", len(snapshot.entities), snapshot.fetched_at)
        return True

    def refresh(self) -> RefreshResult:
        """Bring the copy up to date; on failure keep the last good copy and say why in the result."""
        with self._lock:
            now = self._clock()
            current = self._snapshot
            full = current is None or current.registry_last_change is None or now - current.full_at >= self.full_every
            mode: Literal["full", "incremental"] = "full" if full else "incremental"
            try:
                if full or current is None or current.registry_last_change is None:
                    directory = self.source.get_all_records()
                    entities = directory.entities
                    full_at = now
                else:
                    directory = self.source.get_new_records(current.registry_last_change)
                    merged = dict(self._index.by_guid)
                    merged.update((e.guid, e) for e in directory.entities)
                    entities = tuple(merged.values())
                    full_at = current.full_at
            except KurierError as exc:
                self.last_error = exc
                log.warning("SEOS registry %s refresh failed, using the copy of %s: %s", mode,
                            current.fetched_at if current else "never", exc)
                return RefreshResult(mode, error=exc)
            stamps = [e.last_change for e in directory.entities if e.last_change]
            last_change = directory.last_change or (max(stamps) if stamps else None)
            if last_change is None and current is not None:
                last_change = current.registry_last_change
            # The registry's LastChange is kept as it wrote it (its clock, with or without a zone): the next
            # GetNewRecords must ask from that instant in its own notation, not from ours.
            self._install(Snapshot(tuple(entities), last_change, now, full_at), persist=True)
            self.last_error = None
            return RefreshResult(mode, changed=len(directory.entities))

    def _install(self, snapshot: Snapshot, *, persist: bool) -> None:
        self._index = _Index(snapshot.entities)
        self._snapshot = snapshot
        if persist and self.store:
            self.store.save(snapshot)

    @property
    def fetched_at(self) -> datetime | None:
        """When the registry last answered (this process or, from the snapshot, an earlier one)."""
        return self._snapshot.fetched_at if self._snapshot else None

    @property
    def age(self) -> timedelta | None:
        """How old the copy is; None before there is one."""
        return self._clock() - self._snapshot.fetched_at if self._snapshot else None

    @property
    def entities(self) -> tuple[Entity, ...]:
        return tuple(self._require().by_guid.values())

    def _require(self) -> _Index:
        if self._snapshot is None:
            cause = f": {self.last_error}" if self.last_error else ""
            raise Transient(f"SEOS registry: no copy of the registry yet{cause}", code="registry-no-copy")
        return self._index

    # -- look-ups --------------------------------------------------------------------------------

    def by_eik(self, eik: str) -> tuple[Entity, ...]:
        """The entities registered under an EIK, active and most recently changed first."""
        return tuple(self._require().by_eik.get(eik.strip(), ()))

    def by_guid(self, guid: str) -> Entity | None:
        return self._require().by_guid.get(normalize_guid(guid))

    def by_certificate_sn(self, serial_hex: str) -> Entity | None:
        return self._require().by_serial.get(normalize_serial(serial_hex))

    def search(self, text: str) -> tuple[Entity, ...]:
        """Entities whose name, EIK or GUID contains ``text`` (any case), by name: for operators."""
        needle = text.strip().casefold()
        found = [e for e in self._require().by_guid.values()
                 if needle in e.administrative_body_name.casefold() or needle in e.entity_identifier
                 or needle in e.guid]
        return tuple(sorted(found, key=lambda e: (e.administrative_body_name.casefold(), e.guid)))

    def guid_for_eik(self, eik: str) -> str:
        """The GUID to address an administration by: its active entity's. Refused when there is none."""
        found = self.by_eik(eik)
        if not found:
            raise Refused(f"Получателят с ЕИК {eik} не е регистриран в регистъра на СЕОС / "
                          f"the recipient EIK {eik} is not in the SEOS registry", code="seos-unknown-recipient")
        if not found[0].active:
            raise Refused(f"Получателят с ЕИК {eik} е неактивен в регистъра на СЕОС / the recipient EIK {eik} "
                          f"is {found[0].status.label} in the SEOS registry", code="seos-inactive-recipient")
        return found[0].guid

    def service_uri(self, eik: str, service: str = DOCUMENT_FLOW_SERVICE) -> str:
        """EIK → GUID → the URI of one of its services (by default the document flow's, where Submit goes)."""
        entity = self._require().by_guid[self.guid_for_eik(eik)]
        registered = entity.service(service)
        if registered is None or not registered.uri:
            raise Refused(f"Получателят с ЕИК {eik} няма регистрирана услуга {service} в СЕОС / the recipient "
                          f"EIK {eik} has no service {service} with a URI in the SEOS registry",
                          code="seos-no-endpoint")
        return registered.uri

    def submit_uri(self, eik: str) -> str:
        return self.service_uri(eik, DOCUMENT_FLOW_SERVICE)

    def active_sender(self, guid: str) -> Entity:
        """The registered, active sender with this GUID (receiver check 3), or Refused naming what is wrong."""
        entity = self.by_guid(guid)
        if entity is None:
            raise Refused(f"Подателят с GUID {guid} не е регистриран в СЕОС / the sender GUID {guid} is not in "
                          "the SEOS registry", code="seos-unknown-sender")
        if not entity.active:
            raise Refused(f"Подателят с GUID {guid} е неактивен в СЕОС / the sender GUID {guid} "
                          f"({entity.administrative_body_name}) is {entity.status.label} in the SEOS registry",
                          code="seos-inactive-sender")
        return entity
