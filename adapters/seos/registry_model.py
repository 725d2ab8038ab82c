"""What the SEOS registry says about a participant: the typed Entity and its Services.

The shapes follow the registry WSDL (namespace ``uri:egovmsg``): an Entity has an EIK, a GUID, a
parent GUID, a name, contact data, the serial of its registered certificate, a Status and Services.
GUIDs are kept as ``{lowercase}`` and certificate serials as uppercase hex without leading zeros, so
that look-ups match whatever case or padding a peer or the registry writes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime

from schemas.identifiers import normalize_guid

__all__ = [
    "DOCUMENT_FLOW_SERVICE",
    "Contact",
    "Entity",
    "EntityStatus",
    "Service",
    "normalize_serial",
]

#: The document-flow service of every participant: its URI is where ``Submit`` is called.
DOCUMENT_FLOW_SERVICE = "{7060efa8-f1fa-4938-8b2b-12a78c86988f}"

_SEPARATORS = re.compile(r"[\s:-]")
_HEX = re.compile(r"^[0-9A-F]+$")


class EntityStatus(enum.IntEnum):
    """The registry's Status of a participant (an ``xsd:string`` holding 0, 1 or 2)."""

    INACTIVE = 0
    ACTIVE = 1
    TEMPORARILY_INACTIVE = 2

    @property
    def label(self) -> str:
        return {0: "inactive", 1: "active", 2: "temporarily inactive"}[self.value]


def normalize_serial(value: str) -> str:
    """A certificate serial as uppercase hex without separators or leading zeros.

    .NET peers write the DER bytes (``00AB…`` when the top bit is set), OpenSSL writes ``ab:…``; the
    registry holds whatever the administration typed. Without this, one certificate has three spellings.
    """
    cleaned = _SEPARATORS.sub("", value).upper().lstrip("0") or "0"
    if not _HEX.match(cleaned):
        raise ValueError(f"certificate serial {value!r} is not hexadecimal")
    return cleaned


@dataclass(frozen=True)
class Contact:
    phone: str = ""
    fax: str = ""
    email: str = ""


@dataclass(frozen=True)
class Service:
    """One service a participant offers; ``URI`` of the document-flow one is its SEOS endpoint."""

    guid: str
    name: str
    uri: str
    status: str = "1"
    type: str = ""
    version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "guid", normalize_guid(self.guid))


@dataclass(frozen=True)
class Entity:
    """A SEOS participant as the registry lists it."""

    entity_identifier: str  # the EIK / BULSTAT
    guid: str
    administrative_body_name: str
    status: EntityStatus = EntityStatus.ACTIVE
    certificate_sn: str = ""
    parent_guid: str = ""
    contact: Contact = field(default_factory=Contact)
    services: tuple[Service, ...] = ()
    last_change: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "guid", normalize_guid(self.guid))
        object.__setattr__(self, "status", EntityStatus(self.status))
        if self.parent_guid:
            object.__setattr__(self, "parent_guid", normalize_guid(self.parent_guid))
        if self.certificate_sn:
            object.__setattr__(self, "certificate_sn", normalize_serial(self.certificate_sn))
        object.__setattr__(self, "services", tuple(self.services))

    @property
    def eik(self) -> str:
        return self.entity_identifier

    @property
    def active(self) -> bool:
        return self.status is EntityStatus.ACTIVE

    def service(self, guid: str) -> Service | None:
        wanted = normalize_guid(guid)
        return next((s for s in self.services if s.guid == wanted), None)

    @property
    def submit_uri(self) -> str | None:
        """Where this participant's ``Submit`` is called: its document-flow service's URI, if registered."""
        flow = self.service(DOCUMENT_FLOW_SERVICE)
        return flow.uri if flow and flow.uri else None
