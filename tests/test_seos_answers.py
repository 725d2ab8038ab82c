"""Reading a peer's answer to Kurier's Submit: delivered, already there, refused, or worth a retry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.seos.answers import Delivered, read_answer
from schemas.errors import DeliveryFailed, Transient
from schemas.identifiers import new_guid
from schemas.seos import (
    DocStatus,
    DocumentId,
    DocumentStatusResponse,
    Error,
    ErrorType,
    Header,
    Message,
    build_message,
)
from signing.xmldsig import sign_seos_message
from tests.seos_fixtures import PEER, REGION
from tests.xmlsig_fixtures import SignerPki, pki  # noqa: F401 (the fixture)

SENT = new_guid()


def _from_peer(body: DocumentStatusResponse | Error, key: object) -> bytes:
    header = Header(message_date=datetime.now(UTC), sender=PEER, recipient=REGION, message_guid=new_guid())
    return sign_seos_message(build_message(Message(header=header, body=body)), key)  # type: ignore[arg-type]


def _read(pki: SignerPki, data: bytes, *, retry: bool = False) -> Delivered:  # noqa: F811
    serial = format(pki.signer.certificate().serial_number, "X")
    return read_answer(data, sent_guid=SENT, retry=retry, peer_certificate_sn=serial, trust_roots=[pki.root])


@pytest.mark.parametrize("status", [DocStatus.WAIT_REGISTRATION, DocStatus.ALREADY_RECEIVED, DocStatus.REGISTERED])
def test_a_signed_status_response_means_delivered_in_that_status(pki: SignerPki, status: DocStatus) -> None:  # noqa: F811
    answer = _read(pki, _from_peer(DocumentStatusResponse(doc_id=DocumentId(guid=new_guid()), status=status),
                                   pki.signer))
    assert answer.status == status and not answer.duplicate


def test_a_retry_refused_as_a_duplicate_message_guid_counts_as_delivered(pki: SignerPki) -> None:  # noqa: F811
    duplicate = Error(error_type=ErrorType.EXTERNAL, message_guid=SENT,
                      description=f"Грешка на подателя: съобщение с MessageGUID {SENT} вече е получено.")
    data = _from_peer(duplicate, pki.signer)
    # On a retry: the first try had arrived, its answer was lost
    answer = _read(pki, data, retry=True)
    assert answer.duplicate and answer.status == DocStatus.ALREADY_RECEIVED
    # On a first try the same answer is a refusal: something else is wrong
    with pytest.raises(DeliveryFailed, match="вече е получено"):
        _read(pki, data)


def test_an_error_is_final_unless_it_is_the_receivers_own_trouble(pki: SignerPki) -> None:  # noqa: F811
    refused = Error(error_type=ErrorType.EXTERNAL, message_guid=SENT,
                    description="Грешка на подателя: подписът на съобщението не е валиден.")
    with pytest.raises(DeliveryFailed, match="the peer refused the message: Грешка на подателя"):
        _read(pki, _from_peer(refused, pki.signer), retry=True)
    internal = Error(error_type=ErrorType.INTERNAL, message_guid=SENT, description="Грешка на получателя: базата "
                     "данни е недостъпна.")
    with pytest.raises(Transient, match="ERR_INTERNAL"):
        _read(pki, _from_peer(internal, pki.signer))


def test_an_answer_that_cannot_be_trusted_is_not_taken_as_delivered(pki: SignerPki) -> None:  # noqa: F811
    good = _from_peer(DocumentStatusResponse(doc_id=DocumentId(guid=new_guid()), status=DocStatus.WAIT_REGISTRATION),
                      pki.signer)
    with pytest.raises(DeliveryFailed, match="not validly signed"):
        _read(pki, good.replace(b"DS_WAIT_REGISTRATION", b"DS_REGISTERED"))
    with pytest.raises(DeliveryFailed, match="not its registered"):
        _read(pki, _from_peer(DocumentStatusResponse(doc_id=DocumentId(guid=new_guid()),
                                                     status=DocStatus.WAIT_REGISTRATION), pki.ec_signer))
    with pytest.raises(DeliveryFailed, match="empty SubmitResult"):
        _read(pki, b"")
    with pytest.raises(DeliveryFailed, match="not a SEOS message"):
        _read(pki, b"<html>Service Unavailable</html>")
