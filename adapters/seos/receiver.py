"""The receiver's checks of a submitted SEOS message, and the signed answer each outcome gets.

In the reference receiver's order (domain.md §3), with Kurier's stricter checks on top, each of which a
peer's policy may relax where a real peer needs it:

1. the message reads as a SEOS Message (else a SOAP fault, as the reference answers); Kurier: and is
   valid against the SEOS schema (``check_schema``; the reference only logs it);
2. its recipient is an administration this endpoint serves;
3. its sender is a participant of the registry, and an active one;
4. its signature is valid (Kurier: and only what the signature covers is read; the chain leads to a
   trust anchor and the certificate was valid: ``check_chain``);
5. the signing certificate is the sender's registered one (serial number, uppercase hex);
6. Kurier: the TLS client certificate is the sender's registered one too (``check_tls``);
7. the MessageGUID was never seen before.

A refusal from step 2 on is a signed ``MSG_Error`` (``ERR_EXTERNAL``, sender and recipient swapped, the
refused message's GUID) saying in Bulgarian whose fault it is and which check failed. An accepted
registration request is answered ``DS_WAIT_REGISTRATION`` (new) or ``DS_ALREADY_RECEIVED`` (its
DocumentGUID is already here); a status request with the document's status (``DS_NOT_FOUND`` when
unknown); a received status response or error with an empty string.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from asn1crypto import x509 as asn1_x509

from schemas.errors import Refused
from schemas.identifiers import new_guid
from schemas.payloads import PayloadStore
from schemas.seos import (
    DocStatus,
    DocumentRegistrationRequest,
    DocumentStatusRequest,
    DocumentStatusResponse,
    Entity,
    Error,
    ErrorType,
    Header,
    Message,
    build_message,
)
from schemas.seos.parse import message_from_xml
from schemas.seos.schema import schema_errors
from schemas.xmlsafe import parse_xml
from signing.keys import KeySource
from signing.report import SignatureStatus
from signing.xmldsig import sign_seos_message, verify_seos_message

__all__ = ["Decision", "Directory", "Participant", "PeerPolicy", "Receiver", "Served"]


@dataclass(frozen=True)
class Participant:
    """What the checks need of a registry entry."""

    eik: str
    guid: str
    name: str
    certificate_sn: str | None  # uppercase hex
    active: bool
    status: str = "active"  # as the registry says it, for the refusal's text


class Directory(Protocol):
    def participant(self, guid: str) -> Participant | None: ...


@dataclass(frozen=True)
class PeerPolicy:
    """Kurier's stricter checks, each on unless a peer needs it off."""

    check_schema: bool = True  # the message is valid against the SEOS schema (the reference only logs it)
    check_chain: bool = True  # the signer's chain to a trust anchor, and its validity
    check_tls: bool = True  # the TLS client certificate is the registered one
    digest: str = "sha256"  # how Kurier signs its answers to this peer ("sha1" for old peers)


@dataclass(frozen=True)
class Served:
    """An administration Kurier is the SEOS participant for, and its registered key."""

    entity: Entity
    key: KeySource


@dataclass(frozen=True)
class Decision:
    """What the receiver decided: the answer to return, and what it read."""

    answer: bytes  # the signed answer (SubmitResult), or b"" for a received status response or error
    message: Message | None  # the message as its signature covers it (None: refused before that)
    accepted: bool
    check: str | None = None  # which refused it: schema, recipient, sender, signature, certificate, tls, duplicate
    reason: str | None = None  # in English, for the journal and the log
    status: DocStatus | None = None  # the status answered, for an accepted request


class Receiver:
    def __init__(self, served: Mapping[str, Served], directory: Directory, trust_roots: Sequence[asn1_x509.Certificate],
                 *, seen: Callable[[str], bool], document_status: Callable[[str, str], DocStatus | None],
                 policy: Callable[[str], PeerPolicy] = lambda _guid: PeerPolicy(), store: PayloadStore | None = None,
                 max_bytes: int = 10 * 1024 * 1024) -> None:
        self.served = dict(served)
        self.directory = directory
        self.trust_roots = list(trust_roots)
        self.seen = seen  # MessageGUID -> ever sent or received
        self.document_status = document_status  # (DocumentGUID, sender GUID) -> its status here, None: unknown
        self.policy = policy
        self.store = store
        self.max_bytes = max_bytes

    def receive(self, administration: str, data: bytes, tls_certificate: bytes | None) -> Decision:
        """Check ``data``, submitted to the endpoint of ``administration`` (EIK); raises :class:`Refused` for
        a message that does not read as SEOS (answered with a SOAP fault)."""
        # Read once (hardened), the same tree checked against the schema and made into the Message.
        root = parse_xml(data, what="the SEOS message", max_bytes=self.max_bytes)
        message = message_from_xml(root, store=self.store)
        header = message.header
        errors = schema_errors(root) if self.policy(header.sender.guid).check_schema else []
        if errors and (answering := self.served.get(administration)) is not None:
            return self._refuse(answering, message, "schema", "съобщението не отговаря на XSD схемата на СЕОС: "
                                + "; ".join(errors[:3]), "not valid against the SEOS schema: " + "; ".join(errors[:3]))
        served = self.served.get(header.recipient.identifier)
        if served is None or header.recipient.identifier != administration:
            who = self.served.get(administration)
            if who is None:
                raise Refused(f"no administration with EIK {administration} is served here", code="seos-recipient")
            return self._refuse(who, message, "recipient",
                                f"получателят с ЕИК {header.recipient.identifier} не се обслужва от тази точка "
                                f"за обмен (тук: {who.entity.name}, ЕИК {who.entity.identifier})",
                                f"the recipient {header.recipient.identifier} is not served at this endpoint")
        sender = self.directory.participant(header.sender.guid)
        if sender is None:
            return self._refuse(served, message, "sender", f"подателят с GUID {header.sender.guid} не е участник "
                                "в регистъра на СЕОС", f"sender {header.sender.guid} is not in the registry")
        if not sender.active:
            return self._refuse(served, message, "sender", f"подателят {sender.name} (GUID {sender.guid}) не е "
                                f"активен участник в СЕОС (статус: {sender.status})",
                                f"sender {sender.guid} is not active in the registry ({sender.status})")
        policy = self.policy(sender.guid)
        verification = verify_seos_message(data, trust_roots=self.trust_roots)
        report = verification.report
        relaxed = not policy.check_chain and report.status in (SignatureStatus.UNTRUSTED, SignatureStatus.EXPIRED)
        if not (report.ok or relaxed) or not verification.signed or verification.certificate is None:
            return self._refuse(served, message, "signature", f"подписът на съобщението не е валиден: {report.reason}",
                                f"the message signature is not valid: {report.reason}")
        # From here on only what the signature covers counts: a wrapped copy cannot say something else.
        covered = message_from_xml(verification.signed[0], store=self.store)
        if covered.header != header or covered.message_type != message.message_type:
            return self._refuse(served, message, "signature", "подписаното съдържание не съвпада със съобщението",
                                "the signed content differs from the message (signature wrapping)")
        serial = _serial(verification.certificate)
        if sender.certificate_sn is None or serial != sender.certificate_sn.upper():
            return self._refuse(served, covered, "certificate",
                                f"съобщението е подписано със сертификат с номер {serial}, а регистрираният за "
                                f"подателя е {sender.certificate_sn or 'няма'}",
                                f"signed with certificate {serial}, the sender's registered one is "
                                f"{sender.certificate_sn}")
        if policy.check_tls:
            tls = _serial(asn1_x509.Certificate.load(tls_certificate)) if tls_certificate else "няма"
            if tls != sender.certificate_sn.upper():
                return self._refuse(served, covered, "tls",
                                    f"TLS сертификатът на връзката (номер {tls}) не е регистрираният за подателя "
                                    f"({sender.certificate_sn})",
                                    f"the TLS client certificate {tls} is not the sender's registered one")
        if self.seen(header.message_guid):
            return self._refuse(served, covered, "duplicate", f"съобщение с MessageGUID {header.message_guid} вече е "
                                "получено", f"MessageGUID {header.message_guid} was received before")
        return self._accept(served, covered, sender, policy)

    def _accept(self, served: Served, message: Message, sender: Participant, policy: PeerPolicy) -> Decision:
        body = message.body
        if isinstance(body, DocumentRegistrationRequest):
            known = self.document_status(body.document.doc_id.guid, sender.guid)
            status = DocStatus.WAIT_REGISTRATION if known is None else DocStatus.ALREADY_RECEIVED
            answer = DocumentStatusResponse(doc_id=body.document.doc_id, status=status)
            return Decision(self._answer(served, message, answer, policy), message, True, status=status)
        if isinstance(body, DocumentStatusRequest):
            status = self.document_status(body.doc_id.guid, sender.guid) or DocStatus.NOT_FOUND
            answer = DocumentStatusResponse(doc_id=body.doc_id, status=status)
            return Decision(self._answer(served, message, answer, policy), message, True, status=status)
        return Decision(b"", message, True)  # a status response or an error for us: journaled, answered empty

    def _refuse(self, served: Served, message: Message, check: str, bulgarian: str, english: str) -> Decision:
        error = Error(error_type=ErrorType.EXTERNAL, message_guid=message.header.message_guid,
                      description=f"Грешка на подателя: {bulgarian}.")
        policy = self.policy(message.header.sender.guid)
        return Decision(self._answer(served, message, error, policy), None, False, check, english)

    def _answer(self, served: Served, to: Message, body: DocumentStatusResponse | Error, policy: PeerPolicy) -> bytes:
        # Sender and recipient swapped: the answer goes from the served administration to whoever wrote.
        header = Header(message_date=datetime.now(UTC), sender=served.entity, recipient=to.header.sender,
                        message_guid=new_guid())
        return sign_seos_message(build_message(Message(header=header, body=body)), served.key, digest=policy.digest)


def _serial(certificate: asn1_x509.Certificate) -> str:
    return format(certificate.serial_number, "X")
