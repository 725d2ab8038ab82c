"""A client for the central SEOS registry: who takes part, under which GUID, certificate and endpoint.

The five operations of the registry WSDL, over SOAP 1.1 rpc/encoded (see registry_wire for why the
envelopes are written with lxml), posted with httpx, optionally with a client certificate (the
registry, like every SEOS party, may demand mutual TLS). Failures are translated at this edge:

- :class:`Transient` (retry later): unreachable, connection dropped, timeout, HTTP 5xx or 429 without
  a SOAP fault;
- :class:`Permanent` (retrying the same call cannot help): a SOAP fault, another HTTP error, an answer
  that is not XML, is hostile (DOCTYPE, entities) or is not of the operation's shape.
"""

from __future__ import annotations

import logging
import re
import ssl
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from adapters.seos.registry_model import (
    DOCUMENT_FLOW_SERVICE,
    Contact,
    Entity,
    EntityStatus,
    Service,
    normalize_serial,
)
from adapters.seos.registry_wire import (
    Records,
    WireError,
    build_request,
    read_fault,
    read_response,
    soap_action,
)
from schemas.errors import ConfigError, KurierError, Permanent, Transient, redact_secrets
from schemas.identifiers import normalize_guid
from schemas.xmlsafe import parse_xml

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DOCUMENT_FLOW_SERVICE",
    "Contact",
    "Entity",
    "EntityStatus",
    "Records",
    "RegistryClient",
    "RegistrySettings",
    "Service",
]

log = logging.getLogger("kurier.adapters.seos")


class RegistrySettings(BaseModel):
    """Where the registry is and how to reach it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    timeout: float = Field(30.0, gt=0)  # seconds, for connecting and for each read
    client_cert: str | None = None  # PEM certificate presented for mutual TLS (the registered one)
    client_key: str | None = None  # its PEM private key, when not in client_cert's file
    ca_file: str | None = None  # PEM CA bundle the registry's server certificate must chain to
    max_answer_bytes: int = Field(64 * 1024 * 1024, gt=0)  # GetAllRecords of ~1,000 entities is a few MB


def _tls_context(settings: RegistrySettings) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"SEOS registry ca_file {settings.ca_file}: cannot be read as PEM certificates "
                          f"({exc}); point it at the CA bundle of the registry's server certificate") from exc
    if settings.client_cert:
        try:
            context.load_cert_chain(settings.client_cert, settings.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"SEOS registry client_cert {settings.client_cert} / client_key "
                              f"{settings.client_key}: cannot be loaded ({exc}); give the PEM certificate "
                              "and its unencrypted private key") from exc
    elif settings.client_key:
        raise ConfigError("SEOS registry client_key is set without client_cert: set both, or neither")
    return context


class RegistryClient:
    """The registry's five operations; one httpx client (keep-alive). Not thread-safe: one per worker."""

    def __init__(self, settings: RegistrySettings, *, http: httpx.Client | None = None) -> None:
        import httpx

        self.settings = settings
        self._own_http = http is None
        verify = _tls_context(settings) if settings.url.startswith("https:") else True
        self._http = http or httpx.Client(verify=verify, timeout=settings.timeout)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    @property
    def where(self) -> str:
        return f"SEOS registry {redact_secrets(self.settings.url)}"

    # -- the operations --------------------------------------------------------------------------

    def get_all_records(self) -> Records:
        return self.call("GetAllRecords")

    def get_new_records(self, since: datetime) -> Records:
        """The entities changed since ``since`` (pass the registry's own LastChange: its clock, not ours)."""
        return self.call("GetNewRecords", since)

    def get_by_entity_identifier(self, eik: str) -> tuple[Entity, ...]:
        return self.call("GetByEntityIdentifier", eik.strip()).entities

    # GetByGuid and GetByCertificateSN send the value as the caller spells it (the registry may compare
    # strings), and match the answer in normalised form.

    def get_by_guid(self, guid: str) -> Entity | None:
        wanted = normalize_guid(guid)
        return next((e for e in self.call("GetByGuid", guid.strip()).entities if e.guid == wanted), None)

    def get_by_certificate_sn(self, serial_hex: str) -> Entity | None:
        """The entity registered with this certificate serial; sent as uppercase hex, as the registry keeps it."""
        wanted = normalize_serial(serial_hex)
        sent = re.sub(r"[\s:]", "", serial_hex).upper()
        return next((e for e in self.call("GetByCertificateSN", sent).entities if e.certificate_sn == wanted), None)

    # -- the wire --------------------------------------------------------------------------------

    def call(self, operation: str, *args: str | datetime) -> Records:
        """Call ``operation`` and read its EGovMessageDir, or raise Transient/Permanent saying why."""
        import httpx

        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{soap_action(operation)}"'}
        try:
            response = self._http.post(self.settings.url, content=build_request(operation, *args), headers=headers)
        except httpx.TimeoutException as exc:
            raise Transient(f"{self.where} did not answer {operation} within {self.settings.timeout:g} s "
                            f"({type(exc).__name__})", code="registry-timeout") from exc
        except httpx.HTTPError as exc:
            reason = redact_secrets(str(exc)) or type(exc).__name__
            raise Transient(f"{self.where} is unreachable for {operation}: {reason}",
                            code="registry-unreachable") from exc
        return self._read(operation, response)

    def _read(self, operation: str, response: httpx.Response) -> Records:
        status = response.status_code
        what = f"the {self.where} answer to {operation}"
        data = response.content
        root = None
        if data.strip():
            try:
                root = parse_xml(data, what=what, max_bytes=self.settings.max_answer_bytes)
            except KurierError as exc:
                if status >= 500 or status == 429:
                    raise self._unavailable(operation, status) from exc  # a proxy's HTML error page
                raise Permanent(f"{exc} (HTTP {status})", code="registry-bad-answer") from exc
        fault = self._fault(root)
        if fault is not None:
            code, text = fault
            raise Permanent(f"{self.where} refused {operation} with a SOAP fault {code}: {text}",
                            code="registry-fault")
        if status >= 500 or status == 429:
            raise self._unavailable(operation, status)
        if status != 200:
            raise Permanent(f"{self.where} answered {operation} with HTTP {status}; check the registry URL",
                            code="registry-http")
        if root is None:
            raise Permanent(f"{what} is empty (HTTP 200 without a SOAP envelope)", code="registry-bad-answer")
        try:
            directory = read_response(root, operation)
        except WireError as exc:
            raise Permanent(f"{what} is not of the registry's shape: {exc}", code="registry-bad-answer") from exc
        for problem in directory.skipped:
            log.warning("%s: skipped an unreadable %s", what, problem)
        return directory

    def _unavailable(self, operation: str, status: int) -> Transient:
        return Transient(f"{self.where} is unavailable (HTTP {status}) for {operation}; retrying later",
                         code="registry-unavailable")

    @staticmethod
    def _fault(root: etree._Element | None) -> tuple[str, str] | None:
        if root is None:
            return None
        try:
            return read_fault(root)
        except WireError:
            return None
