"""The receiver's view of the registry: its :class:`Directory` protocol answered from the cached copy.

The receiver asks one thing, by the sender's GUID: is it a participant, is it active, which
certificate did it register. Before the hub has any copy of the registry the cache raises Transient
rather than answer "unknown": a message is then not refused for the hub's own ignorance.
"""

from __future__ import annotations

from adapters.seos.receiver import Participant
from adapters.seos.registry_cache import RegistryCache
from adapters.seos.registry_model import EntityStatus
from schemas.identifiers import InvalidIdentifier

__all__ = ["RegistryDirectory"]

# The refusal the receiver writes is in Bulgarian ("статус: …"), so the status is told in Bulgarian.
_STATUS_BG = {
    EntityStatus.INACTIVE: "неактивен",
    EntityStatus.ACTIVE: "активен",
    EntityStatus.TEMPORARILY_INACTIVE: "временно неактивен",
}


class RegistryDirectory:
    """``participant(guid)`` for :class:`adapters.seos.receiver.Receiver`, from a :class:`RegistryCache`."""

    def __init__(self, cache: RegistryCache) -> None:
        self.cache = cache

    def participant(self, guid: str) -> Participant | None:
        try:
            entity = self.cache.by_guid(guid)
        except InvalidIdentifier:
            return None  # a GUID that is no GUID names no participant
        if entity is None:
            return None
        return Participant(eik=entity.entity_identifier, guid=entity.guid, name=entity.administrative_body_name,
                           certificate_sn=entity.certificate_sn or None, active=entity.active,
                           status=_STATUS_BG[entity.status])
