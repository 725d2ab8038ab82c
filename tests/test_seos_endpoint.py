"""Kurier's SEOS endpoint: Submit over mutual TLS, called by a zeep client built from the official WSDL."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import zeep
from lxml import etree
from zeep.transports import Transport

from adapters.seos.endpoint import SeosEndpoint, SoapFault, SubmitCall, TlsFiles
from adapters.seos.soap import SOAP_ACTION, submit_request
from schemas.errors import Transient
from tests.tls_fixtures import TlsSet, tls_set  # noqa: F401 (the fixture)
from tests.xmlsig_fixtures import SEOS_XSD_DIR, seos_message

REGION = "121759222"  # the administration the endpoint serves
BINDING = "{http://services.egov.bg/messaging/}EGovService"


class Recorder:
    """The handler: keeps what each call brought, answers with a message of its own."""

    def __init__(self) -> None:
        self.calls: list[tuple[SubmitCall, bytes]] = []
        self.fault: SoapFault | Transient | None = None

    def __call__(self, call: SubmitCall) -> bytes:
        data = call.message.read_bytes()
        self.calls.append((call, data))
        if self.fault is not None:
            raise self.fault
        return f"<Answer>{hashlib.sha256(data).hexdigest()} {len(data)} Прието</Answer>".encode()


@pytest.fixture()
def endpoint(tls_set: TlsSet, tmp_path: Path) -> Iterator[tuple[SeosEndpoint, Recorder]]:  # noqa: F811
    recorder = Recorder()
    tls = TlsFiles(tls_set.server.certificate, tls_set.server.key, tls_set.ca)
    server = SeosEndpoint("127.0.0.1", 0, tls, {REGION: "Областна администрация Видин"}, recorder,
                          max_bytes=64 * 1024 * 1024, spool=tmp_path)
    server.start()
    try:
        yield server, recorder
    finally:
        server.stop()


def _session(tls_set: TlsSet, client: bool = True) -> requests.Session:  # noqa: F811
    session = requests.Session()
    session.trust_env = False  # else $REQUESTS_CA_BUNDLE overrides the session's own CA (requests#3829)
    session.verify = str(tls_set.ca)
    if client:
        session.cert = (str(tls_set.client.certificate), str(tls_set.client.key))
    return session


def _official_client(url: str, session: requests.Session) -> zeep.proxy.ServiceProxy:
    client = zeep.Client(str(SEOS_XSD_DIR / "EgovEndpoint.wsdl"), transport=Transport(session=session))
    return client.create_service(BINDING, url)


def test_a_zeep_client_from_the_official_wsdl_submits_over_mutual_tls(
        endpoint: tuple[SeosEndpoint, Recorder], tls_set: TlsSet) -> None:  # noqa: F811
    server, recorder = endpoint
    message = seos_message()
    # Given a peer's client built from the national exchange's own WSDL, with its client certificate
    service = _official_client(server.url(REGION), _session(tls_set))
    # When it submits a SEOS message to the endpoint of the administration Kurier serves
    answer = service.Submit(request=message.decode("utf-8"))
    # Then the handler got the message byte for byte, for that administration, with the peer's certificate
    call, data = recorder.calls[0]
    assert data == message and call.size == len(message) and call.administration == REGION
    assert call.peer_certificate == tls_set.client.der
    # and the peer got the handler's answer back as the SubmitResult string
    assert answer == f"<Answer>{hashlib.sha256(message).hexdigest()} {len(message)} Прието</Answer>"
    # and the message file was removed after the call
    assert not call.message.exists()


def test_the_endpoint_serves_its_own_wsdl_and_a_client_built_from_it_can_submit(
        endpoint: tuple[SeosEndpoint, Recorder], tls_set: TlsSet, tmp_path: Path) -> None:  # noqa: F811
    server, recorder = endpoint
    # When a peer fetches ?wsdl
    response = _session(tls_set).get(server.url(REGION) + "?wsdl", timeout=10)
    assert response.status_code == 200
    wsdl = etree.fromstring(response.content)
    # Then its address is this administration's URL and its SOAPAction is the national one
    ns = {"soap": "http://schemas.xmlsoap.org/wsdl/soap/"}
    assert wsdl.xpath("//soap:address/@location", namespaces=ns) == [server.url(REGION)]
    assert wsdl.xpath("//soap:operation/@soapAction", namespaces=ns) == [SOAP_ACTION]
    # and a zeep client built from it submits
    (tmp_path / "kurier.wsdl").write_bytes(response.content)
    client = zeep.Client(str(tmp_path / "kurier.wsdl"), transport=Transport(session=_session(tls_set)))
    assert client.service.Submit(request="<Message/>").startswith("<Answer>")
    assert recorder.calls[-1][1] == b"<Message/>"


@pytest.mark.parametrize("who", ["no certificate", "a certificate from a CA nobody trusts"])
def test_a_client_without_a_trusted_certificate_is_refused_at_the_handshake(
        endpoint: tuple[SeosEndpoint, Recorder], tls_set: TlsSet, who: str) -> None:  # noqa: F811
    server, recorder = endpoint
    session = _session(tls_set, client=False)
    if who != "no certificate":
        session.cert = (str(tls_set.stranger.certificate), str(tls_set.stranger.key))
    # When such a client submits, Then the connection fails and the handler never hears of it
    with pytest.raises(requests.exceptions.RequestException):
        session.post(server.url(REGION), data=submit_request(b"<Message/>"), timeout=10,
                     headers={"SOAPAction": SOAP_ACTION, "Content-Type": "text/xml; charset=utf-8"})
    assert recorder.calls == []


def _post(server: SeosEndpoint, tls_set: TlsSet, body: bytes, *, path: str | None = None,  # noqa: F811
          action: str = SOAP_ACTION) -> requests.Response:
    return _session(tls_set).post(path or server.url(REGION), data=body, timeout=10,
                                  headers={"SOAPAction": f'"{action}"', "Content-Type": "text/xml; charset=utf-8"})


def _fault(response: requests.Response) -> str:
    root = etree.fromstring(response.content)
    return "".join(root.xpath("//faultstring/text()"))


@pytest.mark.parametrize(("body", "reason"), [
    (b"this is not XML", "not well-formed XML"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "DOCTYPE"),
    (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><Other/></s:Body></s:Envelope>',
     "<Other> where <Submit> belongs"),
    (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
     b'<Submit xmlns="http://services.egov.bg/messaging/"/></s:Body></s:Envelope>', "no Submit/request"),
])
def test_unreadable_input_is_answered_with_a_soap_fault_that_says_why(
        endpoint: tuple[SeosEndpoint, Recorder], tls_set: TlsSet, body: bytes, reason: str) -> None:  # noqa: F811
    server, recorder = endpoint
    response = _post(server, tls_set, body)
    assert response.status_code == 500 and reason in _fault(response)
    assert recorder.calls == []


def test_a_fault_from_the_handler_reaches_a_zeep_client_as_a_fault(
        endpoint: tuple[SeosEndpoint, Recorder], tls_set: TlsSet) -> None:  # noqa: F811
    server, recorder = endpoint
    recorder.fault = SoapFault("съобщението не може да бъде прочетено: липсва Header")
    service = _official_client(server.url(REGION), _session(tls_set))
    with pytest.raises(zeep.exceptions.Fault, match="липсва Header"):
        service.Submit(request="<Message/>")


def test_a_receiver_that_cannot_decide_for_now_answers_a_server_fault_to_try_later(
        endpoint: tuple[SeosEndpoint, Recorder], tls_set: TlsSet, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    server, recorder = endpoint
    recorder.fault = Transient("the registry's copy is not loaded yet")
    response = _post(server, tls_set, submit_request(b"<Message/>"))
    root = etree.fromstring(response.content)
    assert response.status_code == 500 and root.xpath("//faultcode/text()") == ["s:Server"]
    assert "send it again later" in _fault(response)
    # told in one line, without a traceback
    assert "could not be handled for now" in caplog.text and "Traceback" not in caplog.text


def test_wrong_address_wrong_action_and_oversized_messages_are_refused(
        endpoint: tuple[SeosEndpoint, Recorder], tls_set: TlsSet) -> None:  # noqa: F811
    server, recorder = endpoint
    body = submit_request(b"<Message/>")
    # an administration this endpoint does not serve
    response = _post(server, tls_set, body, path=server.url("000695235"))
    assert response.status_code == 404 and "no administration is served at /seos/000695235" in _fault(response)
    # an operation SEOS does not have
    response = _post(server, tls_set, body, action="http://services.egov.bg/messaging/IEGovService/Other")
    assert response.status_code == 500 and "unknown SOAPAction" in _fault(response)
    # a message over the limit: refused from its Content-Length, before it is read
    server.max_bytes = 1000
    response = _post(server, tls_set, submit_request(b"<Message>" + b"x" * 2000 + b"</Message>"))
    assert response.status_code == 413 and "more than the 1000 bytes accepted" in _fault(response)
    assert recorder.calls == []


def test_a_large_message_is_streamed_through_whole(endpoint: tuple[SeosEndpoint, Recorder],
                                                    tls_set: TlsSet) -> None:  # noqa: F811
    server, recorder = endpoint
    # Given a message of 20 MB, most of it an attachment's base64, When it is submitted
    body = base64.b64encode(bytes(range(256)) * (60 * 1024))
    message = b"<Message><AttFileName>\xd0\x9f.pdf</AttFileName><AttBody>" + body + b"</AttBody></Message>"
    response = _post(server, tls_set, submit_request(message))
    # Then the handler gets exactly those bytes
    assert response.status_code == 200
    assert recorder.calls[0][1] == message and recorder.calls[0][0].size == len(message)
