"""SEOS messages the tests build: the parties, a registration request and the four message types, signed."""

from __future__ import annotations

from datetime import UTC, date, datetime

from router.store import FileStore
from schemas.envelope import AttachmentRef, Correspondent, CorrespondentKind
from schemas.identifiers import new_guid
from schemas.seos import (
    DocService,
    DocStatus,
    Document,
    DocumentId,
    DocumentNumber,
    DocumentRegistrationRequest,
    DocumentStatusRequest,
    DocumentStatusResponse,
    DocumentURI,
    Entity,
    Error,
    ErrorType,
    Header,
    Message,
    build_message,
)
from signing.xmldsig import sign_seos_message
from tests.xmlsig_fixtures import EIK, SignerPki

PDF = b"%PDF-1.4\n%\xc7\xec\x8f\xa2\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
SENDER = Entity(identifier=EIK, name="Община Тест", guid="{0F3A2C5E-8D41-4B7E-9C2A-1D5E6F708192}")
RECIPIENT = Entity(identifier="000695114", name="Областна администрация Тест",
                   guid="{6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}")

# The receiver's tests: the administrations Kurier serves and the peer that writes to them.
REGION = Entity(identifier="121759222", name="Областна администрация Видин", guid=new_guid())
OTHER_SERVED = Entity(identifier="000056814", name="Община Белоградчик", guid=new_guid())
PEER = Entity(identifier="000695235", name="Община Видин", guid=new_guid())


def header(guid: str = "{11111111-2222-4333-8444-555555555555}") -> Header:
    return Header(message_date=datetime(2026, 12, 1, 10, 0, tzinfo=UTC), sender=SENDER, recipient=RECIPIENT,
                  message_guid=guid)


def registration(store: FileStore) -> Message:
    stored = store.put_bytes(PDF)
    document = Document(
        doc_id=DocumentId(guid="{aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee}",
                          number=DocumentNumber(number="ОА-01-123", doc_date=date(2026, 12, 1))),
        parent_id=DocumentId(guid="{bbbbbbbb-cccc-4ddd-8eee-ffffffffffff}",
                             number=DocumentURI(register_index=12, sequence_number=345,
                                                receipt_or_signing_date=date(2026, 11, 30))),
        kind="Молба",
        correspondents=[
            Correspondent(name="Иван Иванов", city="София", address="ул. „Шипка“ 1", egn="7501010010",
                          email="ivan@example.bg", kind=CorrespondentKind.APPLICANT),
            Correspondent(name="Фирма ЕООД", city="Пловдив", bulstat="000695089", mol="Петър Петров",
                          kind=CorrespondentKind.OTHER),
        ],
        attachments=[AttachmentRef(file_name="молба.pdf", mime_type="application/pdf", size=stored.size,
                                   sha256=stored.sha256, comment="Сканирана молба")],
        about="Молба за издаване на удостоверение", comment="Спешно",
        service=DocService(name="Издаване на удостоверение", type="Бърза", code="2079"),
        req_date_close=date(2026, 12, 15), attention_to="Мария Петрова",
    )
    return Message(header=header(), body=DocumentRegistrationRequest(document=document, comment="Моля, регистрирайте."))


def the_four(store: FileStore) -> list[Message]:
    doc_id = DocumentId(guid="{aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee}")
    return [
        registration(store),
        Message(header=header(), body=DocumentStatusRequest(doc_id=doc_id)),
        Message(header=header(), body=DocumentStatusResponse(
            doc_id=DocumentId(guid=doc_id.guid, number=DocumentNumber(number="94-00-17", doc_date=date(2026, 12, 2))),
            status=DocStatus.REJECTED, rejection_reason="Липсва подпис на заявителя",
            expect_close_date=date(2026, 12, 20))),
        Message(header=header(), body=Error(
            error_type=ErrorType.EXTERNAL, description="Невалиден подпис на съобщението",
            message_guid="{22222222-3333-4444-8555-666666666666}")),
    ]


def a_request(to: Entity = REGION, doc_guid: str | None = None, sender: Entity = PEER) -> Message:
    header = Header(message_date=datetime(2026, 12, 2, 9, 0, tzinfo=UTC), sender=sender, recipient=to,
                    message_guid=new_guid())
    doc = Document(doc_id=DocumentId(guid=doc_guid or new_guid(),
                                     number=DocumentNumber(number="ОВ-12-3", doc_date=date(2026, 12, 1))),
                   kind="Писмо", about="Относно: отчет за 2026 г.")
    return Message(header=header, body=DocumentRegistrationRequest(document=doc, comment="Моля, регистрирайте."))


def signed(message: Message, key: object) -> bytes:
    return sign_seos_message(build_message(message), key)  # type: ignore[arg-type]


def tls(pki: SignerPki) -> bytes:
    return pki.signer.certificate().dump()  # the registered certificate serves TLS and signing alike
