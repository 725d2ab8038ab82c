"""The SEOS registry: the client against a real local registry on 127.0.0.1, and the hub's cached copy.

The requests the client sends are checked against the official registry WSDL (read from the shared
SEOS schemas, never copied): zeep built from it reads each request as the operation's input, and the
SOAPAction and operation element are the WSDL's.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from zeep import Client as ZeepClient
from zeep.transports import Transport

from adapters.seos.receiver import Receiver, Served
from adapters.seos.registry import (
    DOCUMENT_FLOW_SERVICE,
    Contact,
    Entity,
    EntityStatus,
    RegistryClient,
    RegistrySettings,
    Service,
)
from adapters.seos.registry_cache import RegistryCache
from adapters.seos.registry_directory import RegistryDirectory
from adapters.seos.registry_server import LocalRegistry
from adapters.seos.registry_snapshot import JsonSnapshotStore
from adapters.seos.registry_wire import build_request, build_response
from schemas.errors import ConfigError, Permanent, Refused, Transient
from tests.hsm_fixtures import tls_server
from tests.seos_fixtures import OTHER_SERVED, PEER, a_request, signed, tls
from tests.seos_fixtures import REGION as RECEIVER_REGION
from tests.xmlsig_fixtures import SEOS_XSD_DIR, SignerPki, pki  # noqa: F401 (the fixture)

WSDL = SEOS_XSD_DIR / "EgovRegistry.wsdl"
WSDL_NS = {"wsdl": "http://schemas.xmlsoap.org/wsdl/", "soap": "http://schemas.xmlsoap.org/wsdl/soap/"}

# The WSDL's arrays restrict soapenc:Array, whose schema zeep would fetch from the web. This is the
# least of it that zeep needs to read the WSDL offline (written here, not a copy of the W3C file).
_SOAPENC_STUB = b"""<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema"
  xmlns:tns="http://schemas.xmlsoap.org/soap/encoding/" targetNamespace="http://schemas.xmlsoap.org/soap/encoding/">
  <xsd:attribute name="arrayType" type="xsd:string"/>
  <xsd:complexType name="Array">
    <xsd:sequence><xsd:any minOccurs="0" maxOccurs="unbounded" processContents="lax"/></xsd:sequence>
    <xsd:attribute ref="tns:arrayType"/>
  </xsd:complexType>
</xsd:schema>"""


class _OfflineTransport(Transport):
    def load(self, url: str) -> bytes:
        if url.startswith("http://schemas.xmlsoap.org/soap/encoding"):
            return _SOAPENC_STUB
        if "://" in url:
            raise OSError(f"no network in tests: {url}")
        return bytes(super().load(url))


def _flow(uri: str) -> Service:
    return Service(DOCUMENT_FLOW_SERVICE, "Документооборот", uri, "1", "SEOS", 1)


MUNICIPALITY = Entity(
    entity_identifier="000695089", guid="{6A1F2C3D-1111-4938-8B2B-12A78C86988F}",
    administrative_body_name="Община Тест", status=EntityStatus.ACTIVE, certificate_sn="00AB12CD",
    parent_guid="{6a1f2c3d-0000-4938-8b2b-12a78c86988f}",
    contact=Contact(phone="+359 2 123", fax="", email="seos@test.bg"),
    services=(_flow("https://seos.test.bg/Submit"),),
)
REGION = Entity(
    entity_identifier="000000019", guid="{6a1f2c3d-2222-4938-8b2b-12a78c86988f}",
    administrative_body_name="Областна администрация", certificate_sn="01FF",
    services=(_flow("https://seos.region.bg/Submit"),),
)
CLOSED = Entity(
    entity_identifier="000000027", guid="{6a1f2c3d-3333-4938-8b2b-12a78c86988f}",
    administrative_body_name="Закрито ведомство", status=EntityStatus.INACTIVE, certificate_sn="0C",
    services=(_flow("https://seos.closed.bg/Submit"),),
)


@pytest.fixture
def registry() -> Iterator[LocalRegistry]:
    with LocalRegistry([MUNICIPALITY, REGION, CLOSED]) as server:
        yield server


@pytest.fixture
def client(registry: LocalRegistry) -> Iterator[RegistryClient]:
    with RegistryClient(RegistrySettings(url=registry.url, timeout=2)) as c:
        yield c


@pytest.fixture(scope="module")
def official() -> ZeepClient:
    return ZeepClient(str(WSDL), transport=_OfflineTransport())


def _names(entities: Any) -> set[str]:
    return {e.administrative_body_name for e in entities}


# -- the client and the five operations ----------------------------------------------------------


def test_get_all_records_returns_every_entity_with_all_its_fields(client: RegistryClient) -> None:
    # Given the local registry with three entities, When the client asks for all records
    directory = client.get_all_records()
    # Then all three come back, typed, GUIDs and serials in one spelling, the registry's LastChange with them
    assert _names(directory.entities) == {"Община Тест", "Областна администрация", "Закрито ведомство"}
    got = next(e for e in directory.entities if e.eik == "000695089")
    assert dataclasses.replace(got, last_change=None) == MUNICIPALITY
    assert got.guid == "{6a1f2c3d-1111-4938-8b2b-12a78c86988f}" and got.certificate_sn == "AB12CD"
    assert got.contact.email == "seos@test.bg" and got.parent_guid.startswith("{6a1f2c3d-0000")
    assert got.submit_uri == "https://seos.test.bg/Submit"
    assert directory.last_change is not None and got.last_change is not None


def test_each_look_up_operation_returns_the_matching_entity(client: RegistryClient) -> None:
    # When the client asks by EIK, by GUID (another case, no braces) and by serial (lowercase, padded)
    by_eik = client.get_by_entity_identifier("000000019")
    by_guid = client.get_by_guid("6A1F2C3D-2222-4938-8B2B-12A78C86988F")
    by_serial = client.get_by_certificate_sn("00ab12cd")
    # Then each returns the one entity it names
    assert _names(by_eik) == {"Областна администрация"}
    assert by_guid is not None and by_guid.eik == "000000019"
    assert by_serial is not None and by_serial.eik == "000695089"
    # And an unknown one gives nothing rather than an error
    assert client.get_by_guid("{00000000-0000-0000-0000-000000000000}") is None
    assert client.get_by_entity_identifier("121212121") == ()


def test_get_new_records_returns_only_what_changed_since(registry: LocalRegistry, client: RegistryClient) -> None:
    # Given the registry's LastChange, and then one entity changed a minute later
    since = client.get_all_records().last_change
    assert since is not None
    registry.put(dataclasses.replace(REGION, administrative_body_name="Областна администрация (нова)"),
                 changed_at=since + timedelta(minutes=1))
    # When the client asks for the records changed since then
    directory = client.get_new_records(since + timedelta(seconds=1))
    # Then only the changed entity comes back
    assert _names(directory.entities) == {"Областна администрация (нова)"}


OPERATION_CALLS: dict[str, tuple[Any, ...]] = {
    "GetAllRecords": (),
    "GetNewRecords": (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),),
    "GetByEntityIdentifier": ("000695089",),
    "GetByGuid": ("{6a1f2c3d-1111-4938-8b2b-12a78c86988f}",),
    "GetByCertificateSN": ("AB12CD",),
}
METHODS = {"GetAllRecords": "get_all_records", "GetNewRecords": "get_new_records",
           "GetByEntityIdentifier": "get_by_entity_identifier", "GetByGuid": "get_by_guid",
           "GetByCertificateSN": "get_by_certificate_sn"}


@pytest.mark.parametrize("operation", OPERATION_CALLS)
def test_the_request_is_the_official_wsdl_operation(operation: str, registry: LocalRegistry, client: RegistryClient,
                                                    official: ZeepClient) -> None:
    # When the client calls the operation
    getattr(client, METHODS[operation])(*OPERATION_CALLS[operation])
    sent = registry.requests[-1]
    # Then the SOAPAction is the one the official WSDL binds to it, as SOAP 1.1 wants it: quoted
    wsdl = etree.parse(str(WSDL))
    action = wsdl.find(f"wsdl:binding/wsdl:operation[@name='{operation}']/soap:operation", WSDL_NS)
    assert action is not None and sent.soap_action == f'"{action.get("soapAction")}"'
    assert sent.content_type.startswith("text/xml")
    # And the Body holds the operation element in the WSDL's namespace, SOAP-encoded, with the WSDL's parts
    envelope = etree.fromstring(sent.body)
    call = envelope.find("{http://schemas.xmlsoap.org/soap/envelope/}Body/*")
    assert call is not None and call.tag == f"{{uri:egovmsg}}{operation}"
    assert call.get("{http://schemas.xmlsoap.org/soap/envelope/}encodingStyle") == \
        "http://schemas.xmlsoap.org/soap/encoding/"
    parts = [p.get("name") for p in wsdl.findall(f"wsdl:message[@name='{operation}Request']/wsdl:part", WSDL_NS)]
    assert [c.tag for c in call] == parts
    # And zeep, built from the official WSDL, reads it as that operation's input with the values sent
    binding = next(iter(official.wsdl.bindings.values()))
    read = binding.get(operation).input.deserialize(envelope)
    assert read == (OPERATION_CALLS[operation][0] if parts else None)


def test_the_local_registry_answers_in_the_official_wsdl_shapes(registry: LocalRegistry, client: RegistryClient,
                                                               official: ZeepClient) -> None:
    # Given an answer of the local registry
    client.get_all_records()
    answer = registry.answer(registry.requests[-1].body, registry.requests[-1].soap_action)[1]
    # When zeep, built from the official WSDL, reads it as GetAllRecords' output
    binding = next(iter(official.wsdl.bindings.values()))
    result = binding.get("GetAllRecords").output.deserialize(etree.fromstring(answer))
    # Then it finds the entities and their services where the WSDL puts them
    by_eik = {e["EntityIdentifier"]: e for e in result["Entities"]}
    assert set(by_eik) == {"000695089", "000000019", "000000027"}
    assert by_eik["000695089"]["Services"][0]["URI"] == "https://seos.test.bg/Submit"
    assert by_eik["000000027"]["Status"] == "0"


def test_multi_reference_answers_are_read(registry: LocalRegistry, client: RegistryClient) -> None:
    # Given a registry whose encoder writes each entity once, by reference (href/id), as .NET's does
    registry.raw_answer = (200, """<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:e="uri:egovmsg"><s:Body>
 <e:GetByGuidResponse><return href="#dir"/></e:GetByGuidResponse>
 <e:EGovMessageDir id="dir"><Entities><Entity href="#ent1"/></Entities>
   <LastChange>2026-11-30T10:00:00</LastChange></e:EGovMessageDir>
 <e:Entity id="ent1"><EntityIdentifier>000695089</EntityIdentifier>
   <Guid>{6a1f2c3d-1111-4938-8b2b-12a78c86988f}</Guid><AdministrativeBodyName>Община Тест</AdministrativeBodyName>
   <CertificateSN>ab12cd</CertificateSN><Status>2</Status><Services><Service href="#svc1"/></Services></e:Entity>
 <e:Service id="svc1"><Guid>{7060EFA8-F1FA-4938-8B2B-12A78C86988F}</Guid><Name>DF</Name>
   <URI>https://seos.test.bg/Submit</URI><Status>1</Status><Type>x</Type><Version>2</Version></e:Service>
</s:Body></s:Envelope>""".encode())
    # When the client asks for it
    entity = client.get_by_guid("{6a1f2c3d-1111-4938-8b2b-12a78c86988f}")
    # Then the references are followed
    assert entity is not None and entity.status is EntityStatus.TEMPORARILY_INACTIVE
    assert entity.submit_uri == "https://seos.test.bg/Submit" and entity.services[0].version == 2


def test_one_unreadable_entity_does_not_hide_the_others(registry: LocalRegistry, client: RegistryClient,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    # Given an answer in which one entity has a Status the WSDL's registry never uses
    client.get_all_records()
    answer = registry.answer(registry.requests[-1].body, registry.requests[-1].soap_action)[1]
    registry.raw_answer = (200, answer.replace(b"<Status xsi:type=\"xsd:string\">0</Status>",
                                               b"<Status xsi:type=\"xsd:string\">closed</Status>"))
    # When the client reads it
    directory = client.get_all_records()
    # Then the other entities are there, and the skipped one is named with the reason
    assert _names(directory.entities) == {"Община Тест", "Областна администрация"}
    assert len(directory.skipped) == 1 and "000000027" in directory.skipped[0] and "'closed'" in directory.skipped[0]
    assert any("000000027" in r.getMessage() for r in caplog.records if r.name == "kurier.adapters.seos")


# -- failures: what is worth retrying, and what is not --------------------------------------------


def test_a_doctype_in_the_answer_is_a_permanent_error_naming_it(registry: LocalRegistry,
                                                               client: RegistryClient) -> None:
    # Given a registry (or something in its place) answering with an entity-expansion document
    registry.raw_answer = (200, b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">]><r>&a;&a;</r>')
    # When the client asks, Then it is Permanent, and the reason says DOCTYPE and which answer
    with pytest.raises(Permanent) as err:
        client.get_all_records()
    assert not isinstance(err.value, Transient)
    assert err.value.code == "registry-bad-answer"
    assert "DOCTYPE" in str(err.value) and "GetAllRecords" in str(err.value)


@pytest.mark.parametrize(("status", "body", "reason"), [
    (200, b"<html><body>Welcome to nginx</body></html>", "not of the registry's shape"),
    (200, b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>", "not well-formed"),
    (200, b"", "empty"),
    (500, b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>"
          b"<soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>Invalid EIK</faultstring>"
          b"</soapenv:Fault></soapenv:Body></soapenv:Envelope>", "SOAP fault soapenv:Server: Invalid EIK"),
    (404, b"Not Found", "HTTP 404"),
], ids=["garbage", "truncated", "empty", "soap-fault", "not-found"])
def test_garbage_and_faults_are_permanent_with_a_clear_reason(registry: LocalRegistry, client: RegistryClient,
                                                             status: int, body: bytes, reason: str) -> None:
    registry.raw_answer = (status, body)
    with pytest.raises(Permanent) as err:
        client.get_by_entity_identifier("000695089")
    assert reason in str(err.value) and "GetByEntityIdentifier" in str(err.value)


def test_a_wrong_soapaction_is_refused_by_the_local_registry_as_by_a_strict_one(registry: LocalRegistry) -> None:
    # Given a GetAllRecords request sent with the SOAPAction of GetByGuid
    status, answer = registry.answer(build_request("GetAllRecords"), '"uri:egovmsg/GetByGuid"')
    # Then the local registry answers a SOAP fault naming the mismatch, as a strict registry would
    assert status == 500 and b"Fault" in answer and b"does not name GetAllRecords" in answer


@pytest.mark.parametrize("mode", ["503", "close"])
def test_a_registry_that_is_down_is_transient(registry: LocalRegistry, client: RegistryClient, mode: Any) -> None:
    registry.mode = mode
    with pytest.raises(Transient) as err:
        client.get_all_records()
    assert err.value.code in {"registry-unavailable", "registry-unreachable"}
    assert "SEOS registry http://127.0.0.1:" in str(err.value)


def test_a_slow_registry_times_out_as_transient(registry: LocalRegistry) -> None:
    registry.delay = 1.0
    with RegistryClient(RegistrySettings(url=registry.url, timeout=0.2)) as slow, pytest.raises(Transient) as err:
        slow.get_all_records()
    assert err.value.code == "registry-timeout" and "within 0.2 s" in str(err.value)


def test_an_unreachable_registry_is_transient() -> None:
    server = LocalRegistry()
    url = server.url
    server.stop()  # the port is free again: nothing listens
    with RegistryClient(RegistrySettings(url=url, timeout=1)) as c, pytest.raises(Transient) as err:
        c.get_all_records()
    assert err.value.code == "registry-unreachable"


# -- the cache ------------------------------------------------------------------------------------


@pytest.fixture
def cache(client: RegistryClient, tmp_path: Path) -> RegistryCache:
    return RegistryCache(client, JsonSnapshotStore(tmp_path / "registry"))


def test_the_cache_answers_the_look_ups_routing_and_the_receiver_checks_need(cache: RegistryCache) -> None:
    # Given a cache refreshed from the registry
    assert cache.refresh().ok
    # Then EIK → GUID → Submit URI, GUID → entity, certificate serial of any spelling → entity
    assert cache.guid_for_eik("000695089") == "{6a1f2c3d-1111-4938-8b2b-12a78c86988f}"
    assert cache.submit_uri("000695089") == "https://seos.test.bg/Submit"
    assert cache.by_guid("{6A1F2C3D-2222-4938-8B2B-12A78C86988F}") == cache.by_eik("000000019")[0]
    for spelling in ("AB12CD", "ab12cd", "00:ab:12:cd", "00AB12CD"):
        found = cache.by_certificate_sn(spelling)
        assert found is not None and found.eik == "000695089"
    assert cache.active_sender("{6a1f2c3d-1111-4938-8b2b-12a78c86988f}").eik == "000695089"
    # And an unknown recipient or sender is refused by name
    with pytest.raises(Refused, match="121212121 is not in the SEOS registry"):
        cache.submit_uri("121212121")
    with pytest.raises(Refused, match="is not in the SEOS registry"):
        cache.active_sender("{00000000-0000-0000-0000-000000000000}")


def test_an_operator_finds_entities_by_part_of_a_name_eik_or_guid(cache: RegistryCache) -> None:
    cache.refresh()
    assert [e.eik for e in cache.search("община")] == ["000695089"]
    assert [e.eik for e in cache.search("АДМИНИСТРАЦИЯ")] == ["000000019"]
    assert [e.eik for e in cache.search("3333-4938")] == ["000000027"]
    assert len(cache.search("")) == 3 and cache.search("няма такова") == ()


def test_inactive_entities_are_reported_as_such(cache: RegistryCache) -> None:
    cache.refresh()
    # Given an entity the registry lists as inactive, Then the look-up shows its status
    closed = cache.by_eik("000000027")[0]
    assert closed.status is EntityStatus.INACTIVE and not closed.active
    # And routing to it and accepting from it are refused, saying it is inactive
    with pytest.raises(Refused) as to_it:
        cache.submit_uri("000000027")
    assert to_it.value.code == "seos-inactive-recipient" and "inactive in the SEOS registry" in str(to_it.value)
    with pytest.raises(Refused) as from_it:
        cache.active_sender(closed.guid)
    assert from_it.value.code == "seos-inactive-sender" and "Закрито ведомство" in str(from_it.value)


def test_a_temporarily_inactive_entity_is_refused_as_temporarily_inactive(registry: LocalRegistry,
                                                                          cache: RegistryCache) -> None:
    registry.put(dataclasses.replace(REGION, status=EntityStatus.TEMPORARILY_INACTIVE))
    cache.refresh()
    with pytest.raises(Refused, match="temporarily inactive"):
        cache.active_sender(REGION.guid)


def test_before_any_copy_the_look_ups_are_transient_not_unknown(tmp_path: Path) -> None:
    # Given a hub started while the registry is down and no snapshot on disk
    server = LocalRegistry()
    server.stop()
    with RegistryClient(RegistrySettings(url=server.url, timeout=1)) as c:
        cache = RegistryCache(c, JsonSnapshotStore(tmp_path))
        assert not cache.load()
        assert not cache.refresh().ok
        # Then a sender it has not heard of is not refused as unknown: the look-up is Transient
        with pytest.raises(Transient, match="no copy of the registry yet"):
            cache.active_sender(MUNICIPALITY.guid)
        assert cache.age is None


@pytest.mark.parametrize("mode", ["503", "close"])
def test_the_cache_keeps_its_last_copy_while_the_registry_is_down(registry: LocalRegistry, cache: RegistryCache,
                                                                 mode: Any) -> None:
    # Given a cache refreshed once
    assert cache.refresh().ok
    # When the registry goes down and the next refresh fails
    registry.mode = mode
    result = cache.refresh()
    # Then the failure is reported as Transient, and the last copy still answers, its age told
    assert not result.ok and isinstance(result.error, Transient) and cache.last_error is result.error
    assert cache.submit_uri("000695089") == "https://seos.test.bg/Submit"
    assert cache.age is not None and timedelta(0) <= cache.age < timedelta(minutes=1)
    # And once it is back, the refresh works again and the error is gone
    registry.mode = "up"
    assert cache.refresh().ok and cache.last_error is None


def test_a_restarted_hub_has_the_copy_from_the_snapshot_before_the_registry_answers(
    registry: LocalRegistry, cache: RegistryCache, tmp_path: Path,
) -> None:
    # Given a cache that refreshed and persisted its copy, no temporary file left behind
    cache.refresh()
    files = sorted(p.name for p in (tmp_path / "registry").iterdir())
    assert files == ["seos-registry.json"]
    fetched = cache.fetched_at
    # When the hub restarts while the registry is down
    registry.mode = "503"
    with RegistryClient(RegistrySettings(url=registry.url, timeout=1)) as c:
        restarted = RegistryCache(c, JsonSnapshotStore(tmp_path / "registry"))
        assert restarted.load()
        assert not restarted.refresh().ok
        # Then it answers from the snapshot, with the age of the registry's last answer
        assert restarted.submit_uri("000695089") == "https://seos.test.bg/Submit"
        assert restarted.by_certificate_sn("ab12cd") == cache.by_certificate_sn("AB12CD")
        assert restarted.by_eik("000000027")[0].status is EntityStatus.INACTIVE
        assert restarted.fetched_at == fetched and restarted.age is not None


def test_a_damaged_snapshot_is_no_copy(tmp_path: Path) -> None:
    (tmp_path / "seos-registry.json").write_text('{"format": 1, "entities": [', encoding="utf-8")
    assert JsonSnapshotStore(tmp_path).load() is None


def test_the_cache_picks_up_new_and_changed_entities_with_get_new_records(registry: LocalRegistry,
                                                                          cache: RegistryCache) -> None:
    # Given a cache refreshed in full
    assert cache.refresh().mode == "full"
    # When the registry gains an entity and another one moves its endpoint and certificate
    since = registry.last_change()
    assert since is not None
    newcomer = Entity("000000035", "{6a1f2c3d-4444-4938-8b2b-12a78c86988f}", "Община Нова", certificate_sn="0D",
                      services=(_flow("https://seos.nova.bg/Submit"),))
    registry.put(newcomer, changed_at=since + timedelta(seconds=5))
    registry.put(dataclasses.replace(MUNICIPALITY, certificate_sn="EE01", services=(_flow("https://new.test.bg/S"),)),
                 changed_at=since + timedelta(seconds=6))
    result = cache.refresh()
    # Then the refresh was incremental (GetNewRecords since the registry's LastChange) and brought both
    assert result.ok and result.mode == "incremental"
    assert b"GetNewRecords" in registry.requests[-1].body
    assert since.isoformat().encode()[:19] in registry.requests[-1].body
    assert cache.submit_uri("000000035") == "https://seos.nova.bg/Submit"
    assert cache.submit_uri("000695089") == "https://new.test.bg/S"
    found = cache.by_certificate_sn("EE01")
    assert found is not None and found.eik == "000695089" and cache.by_certificate_sn("AB12CD") is None
    # And the entities that did not change are still there
    assert len(cache.entities) == 4


def test_get_new_records_asks_from_the_registrys_last_change_as_the_registry_wrote_it(
    registry: LocalRegistry, cache: RegistryCache,
) -> None:
    # Given a registry whose clock writes LastChange without a zone (local time, as older servers do)
    registry.raw_answer = (200, build_response("GetAllRecords", [MUNICIPALITY], datetime(2026, 11, 30, 10, 0, 0)))
    assert cache.refresh().mode == "full"
    registry.raw_answer = None
    # When the cache refreshes again
    assert cache.refresh().mode == "incremental"
    # Then it asks for the changes since that instant in the registry's own notation, not shifted to UTC
    sent = etree.fromstring(registry.requests[-1].body)
    assert sent.findtext(".//{uri:egovmsg}GetNewRecords/date") == "2026-11-30T10:00:00"


def test_a_full_refresh_comes_again_after_full_every(registry: LocalRegistry, client: RegistryClient,
                                                     tmp_path: Path) -> None:
    now = [datetime(2026, 12, 1, tzinfo=UTC)]
    cache = RegistryCache(client, JsonSnapshotStore(tmp_path), full_every=timedelta(hours=24), clock=lambda: now[0])
    assert cache.refresh().mode == "full"
    now[0] += timedelta(hours=1)
    assert cache.refresh().mode == "incremental"
    now[0] += timedelta(hours=24)
    assert cache.refresh().mode == "full"
    assert cache.age == timedelta(0)
    saved = json.loads((tmp_path / "seos-registry.json").read_text(encoding="utf-8"))
    assert saved["full_at"] == now[0].isoformat() and len(saved["entities"]) == 3


# -- mutual TLS ------------------------------------------------------------------------------------


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[tuple[LocalRegistry, Path, Path, Path]]:
    """A registry on https://127.0.0.1 that demands a client certificate; (registry, CA, client cert, key)."""
    for side in ("server", "client"):
        (tmp_path / side).mkdir()
    server_context, server_cert = tls_server(tmp_path / "server")
    _, client_cert = tls_server(tmp_path / "client")
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(client_cert)
    with LocalRegistry([MUNICIPALITY], tls=server_context) as server:
        yield server, server_cert, client_cert, tmp_path / "client" / "tls.key.pem"


def test_the_client_presents_its_certificate_to_a_registry_that_demands_one(
    tls_registry: tuple[LocalRegistry, Path, Path, Path],
) -> None:
    registry, ca, cert, key = tls_registry
    # Given the client's certificate, key and the registry's CA, When it asks over https
    settings = RegistrySettings(url=registry.url, timeout=2, ca_file=str(ca), client_cert=str(cert),
                                client_key=str(key))
    with RegistryClient(settings) as c:
        # Then the registry accepts the TLS handshake and answers
        assert registry.url.startswith("https://127.0.0.1:")
        assert _names(c.get_all_records().entities) == {"Община Тест"}


def test_without_a_client_certificate_the_registry_is_not_reached(
    tls_registry: tuple[LocalRegistry, Path, Path, Path],
) -> None:
    registry, ca, _, _ = tls_registry
    # Given a client configured with the CA but no certificate of its own, When it asks
    with RegistryClient(RegistrySettings(url=registry.url, timeout=2, ca_file=str(ca))) as c, \
            pytest.raises(Transient) as err:
        c.get_all_records()
    # Then it is Transient (the registry may be mid-rotation), and the reason is the TLS alert
    assert err.value.code == "registry-unreachable" and "certificate required" in str(err.value)


def test_an_unreadable_client_certificate_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    # Given a client_cert path that does not exist, Then the client is not built, and the error names it
    missing = tmp_path / "missing.pem"
    with pytest.raises(ConfigError) as err:
        RegistryClient(RegistrySettings(url="https://127.0.0.1:9/", client_cert=str(missing)))
    assert str(missing) in str(err.value) and "client_cert" in str(err.value)


# -- the receiver's view ---------------------------------------------------------------------------


def test_the_receiver_sees_registered_inactive_and_unknown_senders_from_the_cache(cache: RegistryCache) -> None:
    # Given the receiver's directory over a refreshed cache
    cache.refresh()
    directory = RegistryDirectory(cache)
    # When it asks for senders by the GUID their messages carry (any case, braces or not)
    active = directory.participant("6A1F2C3D-1111-4938-8B2B-12A78C86988F")
    inactive = directory.participant(CLOSED.guid)
    # Then a registered one comes with its EIK, name and registered serial as the checks compare it
    assert active is not None and active.active and active.eik == "000695089"
    assert active.certificate_sn == "AB12CD" and active.name == "Община Тест"
    # And an inactive one is reported inactive, in the words of the Bulgarian refusal
    assert inactive is not None and not inactive.active and inactive.status == "неактивен"
    # And an unknown or malformed GUID is no participant
    assert directory.participant("{00000000-0000-0000-0000-000000000000}") is None
    assert directory.participant("not-a-guid") is None


def test_a_sender_the_registry_reactivates_is_accepted_after_the_next_refresh(
    registry: LocalRegistry, cache: RegistryCache, pki: SignerPki,  # noqa: F811
) -> None:
    # Given the sending municipality registered as temporarily inactive, with its real signing certificate
    serial = format(pki.signer.certificate().serial_number, "X")  # type: ignore[attr-defined]
    peer = Entity(PEER.identifier, PEER.guid, PEER.name, status=EntityStatus.TEMPORARILY_INACTIVE,
                  certificate_sn=serial, services=(_flow("https://seos.vidin.bg/Submit"),))
    registry.put(peer)
    cache.refresh()
    served = {e.identifier: Served(e, pki.ec_signer) for e in (RECEIVER_REGION, OTHER_SERVED)}
    receiver = Receiver(served, RegistryDirectory(cache), [pki.root], seen=lambda _guid: False,
                        document_status=lambda _guid, _sender: None)
    data = signed(a_request(), pki.signer)
    # When it sends a registration request, Then the receiver refuses it, saying the registry's status
    refused = receiver.receive(RECEIVER_REGION.identifier, data, tls(pki))
    assert not refused.accepted and refused.check == "sender"
    assert refused.reason is not None and "временно неактивен" in refused.reason
    # When the registry reactivates it and the cache picks that up with GetNewRecords
    registry.put(dataclasses.replace(peer, status=EntityStatus.ACTIVE),
                 changed_at=(registry.last_change() or datetime.now(UTC)) + timedelta(seconds=1))
    assert cache.refresh().mode == "incremental"
    # Then the same request is accepted
    assert receiver.receive(RECEIVER_REGION.identifier, data, tls(pki)).accepted
