"""The receiver's checks: each with a real bad message, each getting the answer the protocol says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from adapters.seos.receiver import Decision, Participant, PeerPolicy, Receiver, Served
from schemas.errors import Refused
from schemas.identifiers import new_guid
from schemas.seos import (
    DocStatus,
    DocumentId,
    DocumentStatusRequest,
    DocumentStatusResponse,
    Entity,
    Error,
    ErrorType,
    Header,
    Message,
    build_message,
    parse_message,
)
from signing.xmldsig import sign_seos_message, verify_seos_message
from tests.seos_fixtures import OTHER_SERVED, PEER, REGION, a_request, signed, tls
from tests.xmlsig_fixtures import SEOS_XSD_DIR, SignerPki, pki, seos_schema  # noqa: F401 (the fixture)


class Registry:
    def __init__(self, *entries: Participant) -> None:
        self.entries = {p.guid: p for p in entries}

    def participant(self, guid: str) -> Participant | None:
        return self.entries.get(guid)


def _serial(key: object) -> str:
    return format(key.certificate().serial_number, "X")  # type: ignore[attr-defined]


def _peer(pki: SignerPki, **changes: object) -> Participant:  # noqa: F811
    values: dict[str, object] = {"eik": PEER.identifier, "guid": PEER.guid, "name": PEER.name,
                                 "certificate_sn": _serial(pki.signer), "active": True}
    values.update(changes)
    return Participant(**values)  # type: ignore[arg-type]


def _receiver(pki: SignerPki, *participants: Participant, seen: set[str] | None = None,  # noqa: F811
              known: dict[str, DocStatus] | None = None, policy: PeerPolicy | None = None) -> Receiver:
    served = {e.identifier: Served(e, pki.ec_signer) for e in (REGION, OTHER_SERVED)}
    return Receiver(served, Registry(*(participants or (_peer(pki),))), [pki.root],
                    seen=lambda guid: guid in (seen or set()),
                    document_status=lambda guid, _sender: (known or {}).get(guid),
                    policy=lambda _guid: policy or PeerPolicy())


def _answer(decision: Decision, pki: SignerPki) -> Message:  # noqa: F811
    # Every answer is signed by the served administration and valid against the official schema
    assert verify_seos_message(decision.answer, trust_roots=[pki.root]).report.ok
    assert seos_schema(SEOS_XSD_DIR).validate(etree.fromstring(decision.answer))
    answer = parse_message(decision.answer)
    assert answer.header.recipient == PEER  # sender and recipient swapped
    return answer


def _refused(decision: Decision, pki: SignerPki, check: str, words: str) -> None:  # noqa: F811
    assert not decision.accepted and decision.check == check
    error = _answer(decision, pki).body
    assert isinstance(error, Error) and error.error_type == ErrorType.EXTERNAL
    assert error.description.startswith("Грешка на подателя: ") and words in error.description


def test_a_new_registration_request_is_answered_wait_registration(pki: SignerPki) -> None:  # noqa: F811
    request = a_request()
    decision = _receiver(pki).receive(REGION.identifier, signed(request, pki.signer), tls(pki))
    assert decision.accepted and decision.status == DocStatus.WAIT_REGISTRATION
    assert decision.message == request
    answer = _answer(decision, pki)
    assert answer.header.sender == REGION
    assert isinstance(answer.body, DocumentStatusResponse) and answer.body.status == DocStatus.WAIT_REGISTRATION
    assert answer.body.doc_id.guid == request.body.document.doc_id.guid  # type: ignore[union-attr]


def test_a_document_already_here_under_a_new_message_guid_is_already_received(pki: SignerPki) -> None:  # noqa: F811
    request = a_request()
    known = {request.body.document.doc_id.guid: DocStatus.WAIT_REGISTRATION}  # type: ignore[union-attr]
    decision = _receiver(pki, known=known).receive(REGION.identifier, signed(request, pki.signer), tls(pki))
    assert decision.accepted and decision.status == DocStatus.ALREADY_RECEIVED


@pytest.mark.parametrize("data", [b"not xml at all", b"<Message xmlns='http://schemas.egov.bg/messaging/v1'/>",
                                  b'<!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><m>&x;</m>'])
def test_what_does_not_read_as_a_seos_message_is_a_soap_fault(pki: SignerPki, data: bytes) -> None:  # noqa: F811
    with pytest.raises(Refused):
        _receiver(pki).receive(REGION.identifier, data, tls(pki))


def test_a_recipient_not_served_here_is_refused(pki: SignerPki) -> None:  # noqa: F811
    # Sent to this endpoint but addressed to another administration Kurier serves
    decision = _receiver(pki).receive(REGION.identifier, signed(a_request(to=OTHER_SERVED), pki.signer), tls(pki))
    _refused(decision, pki, "recipient", f"получателят с ЕИК {OTHER_SERVED.identifier} не се обслужва")
    # Addressed to an administration nobody here serves
    stranger = Entity(identifier="831902088", name="Министерство", guid=new_guid())
    decision = _receiver(pki).receive(REGION.identifier, signed(a_request(to=stranger), pki.signer), tls(pki))
    _refused(decision, pki, "recipient", "831902088 не се обслужва")


def test_an_unknown_or_inactive_sender_is_refused(pki: SignerPki) -> None:  # noqa: F811
    data = signed(a_request(), pki.signer)
    unknown = _receiver(pki, _peer(pki, guid=new_guid())).receive(REGION.identifier, data, tls(pki))
    _refused(unknown, pki, "sender", "не е участник в регистъра")
    inactive = _receiver(pki, _peer(pki, active=False, status="временно неактивен"))
    _refused(inactive.receive(REGION.identifier, data, tls(pki)), pki, "sender", "временно неактивен")


def test_a_broken_signature_is_refused(pki: SignerPki) -> None:  # noqa: F811
    data = signed(a_request(), pki.signer).replace("отчет за 2026".encode(), "отчет за 2025".encode())
    _refused(_receiver(pki).receive(REGION.identifier, data, tls(pki)), pki, "signature", "подписът")


def test_a_wrapped_signature_is_refused(pki: SignerPki) -> None:  # noqa: F811
    # Given a forged request (another document, unsigned) carrying a genuine signed message in DocAddData,
    # the free-content element: the first ds:Signature in document order is the genuine one's
    genuine = etree.fromstring(signed(a_request(), pki.signer))
    forged = etree.fromstring(build_message(a_request()))
    document = forged.find(".//{http://schemas.egov.bg/messaging/v1}Document")
    assert document is not None
    etree.SubElement(document, "{http://schemas.egov.bg/messaging/v1}DocAddData").append(genuine)
    # Then it is refused: the signature signs another message than the one it is in
    decision = _receiver(pki).receive(REGION.identifier, etree.tostring(forged), tls(pki))
    _refused(decision, pki, "signature", "подписът на съобщението не е валиден")


def test_a_signature_by_a_certificate_not_the_registered_one_is_refused(pki: SignerPki) -> None:  # noqa: F811
    # A valid signature from the trusted PKI, but not with the certificate the registry has for the sender
    data = signed(a_request(), pki.ec_signer)
    decision = _receiver(pki).receive(REGION.identifier, data, tls(pki))
    _refused(decision, pki, "certificate", f"регистрираният за подателя е {_serial(pki.signer)}")


def test_a_tls_certificate_not_the_senders_is_refused_unless_the_peer_is_relaxed(pki: SignerPki) -> None:  # noqa: F811
    data = signed(a_request(), pki.signer)
    other_tls = pki.ec_signer.certificate().dump()
    _refused(_receiver(pki).receive(REGION.identifier, data, other_tls), pki, "tls", "TLS сертификатът")
    relaxed = _receiver(pki, policy=PeerPolicy(check_tls=False)).receive(REGION.identifier, data, other_tls)
    assert relaxed.accepted


def test_a_signer_outside_the_trusted_pki_is_refused_unless_the_peer_is_relaxed(pki: SignerPki) -> None:  # noqa: F811
    peer = _peer(pki, certificate_sn=_serial(pki.untrusted))
    data, tls = signed(a_request(), pki.untrusted), pki.untrusted.certificate().dump()
    _refused(_receiver(pki, peer).receive(REGION.identifier, data, tls), pki, "signature", "не е валиден")
    assert _receiver(pki, peer, policy=PeerPolicy(check_chain=False)).receive(REGION.identifier, data, tls).accepted


def test_a_message_guid_seen_before_is_refused_as_a_duplicate(pki: SignerPki) -> None:  # noqa: F811
    request = a_request()
    decision = _receiver(pki, seen={request.header.message_guid}).receive(
        REGION.identifier, signed(request, pki.signer), tls(pki))
    _refused(decision, pki, "duplicate", request.header.message_guid)


def test_a_status_request_gets_the_status_and_a_status_response_an_empty_answer(pki: SignerPki) -> None:  # noqa: F811
    header = Header(message_date=datetime.now(UTC), sender=PEER, recipient=REGION, message_guid=new_guid())
    ask = Message(header=header, body=DocumentStatusRequest(doc_id=DocumentId(guid=new_guid())))
    decision = _receiver(pki).receive(REGION.identifier, signed(ask, pki.signer), tls(pki))
    assert decision.accepted and decision.status == DocStatus.NOT_FOUND
    assert _answer(decision, pki).body.status == DocStatus.NOT_FOUND  # type: ignore[union-attr]
    pushed = Message(header=header.model_copy(update={"message_guid": new_guid()}),
                     body=DocumentStatusResponse(doc_id=DocumentId(guid=new_guid()), status=DocStatus.REGISTERED))
    decision = _receiver(pki).receive(REGION.identifier, signed(pushed, pki.signer), tls(pki))
    assert decision.accepted and decision.answer == b"" and decision.message == pushed




def test_a_message_off_the_schema_is_refused_unless_the_peer_is_relaxed(pki: SignerPki) -> None:  # noqa: F811
    # Given a signed request whose MessageGUID lacks the braces the protocol writes GUIDs in (readable, so
    # the reference would take it)
    request = a_request()
    text = build_message(request).decode("utf-8")
    bare = request.header.message_guid.strip("{}")
    data = sign_seos_message(text.replace(request.header.message_guid, bare, 1).encode(), pki.signer)
    # Then Kurier refuses it, naming the schema error
    _refused(_receiver(pki).receive(REGION.identifier, data, tls(pki)), pki, "schema", "XSD схемата")
    # and a peer relaxed on the schema is read as the reference reads it
    relaxed = _receiver(pki, policy=PeerPolicy(check_schema=False)).receive(REGION.identifier, data, tls(pki))
    assert relaxed.accepted
