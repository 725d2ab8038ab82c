"""A registration request to and from Kurier's canonical envelope.

What SEOS has and the envelope has not stays in the message: the register URI form of ``DocID`` (the
envelope keeps a number and a date), ``DocService.ServiceType``, ``DocAttentionTo`` and the sending's
``Comment``. The envelope's ``comment`` is the document's ``DocComment``.
"""

from __future__ import annotations

from datetime import datetime

from schemas.envelope import Envelope, Party, utcnow
from schemas.errors import Refused
from schemas.identifiers import new_guid
from schemas.seos.model import (
    DocService,
    Document,
    DocumentId,
    DocumentNumber,
    DocumentRegistrationRequest,
    Entity,
    Header,
    Message,
)

__all__ = ["envelope_from_message", "message_from_envelope"]


def envelope_from_message(message: Message, *, source: str = "") -> Envelope:
    """The envelope of a received registration request (attachments already in the payload store)."""
    body = message.body
    if not isinstance(body, DocumentRegistrationRequest):
        raise Refused(f"a {message.message_type} carries no document to hand to an AIS", code="invalid-seos")
    doc, header = body.document, message.header
    number = doc.doc_id.number if isinstance(doc.doc_id.number, DocumentNumber) else None
    return Envelope(
        document_guid=doc.doc_id.guid, parent_guid=doc.parent_id.guid if doc.parent_id else None, source=source,
        sender=_party(header.sender), recipient=_party(header.recipient), kind=doc.kind, subject=doc.about or "",
        reg_number=number.number if number else None, reg_date=number.doc_date if number else None,
        procedure_code=doc.service.code if doc.service else None,
        service_name=doc.service.name if doc.service else None, comment=doc.comment, deadline=doc.req_date_close,
        correspondents=list(doc.correspondents), attachments=list(doc.attachments),
    )


def message_from_envelope(env: Envelope, *, message_guid: str | None = None, message_date: datetime | None = None,
                          comment: str = "", service_type: str = "") -> Message:
    """The registration request that sends ``env`` over SEOS (a new ``MessageGUID`` unless given)."""
    number = DocumentNumber(number=env.reg_number, doc_date=env.reg_date) if env.reg_number and env.reg_date else None
    service = None
    if env.procedure_code:
        service = DocService(name=env.service_name or "", type=service_type, code=env.procedure_code)
    document = Document(
        doc_id=DocumentId(guid=env.document_guid, number=number),
        parent_id=DocumentId(guid=env.parent_guid) if env.parent_guid else None,
        kind=env.kind, correspondents=list(env.correspondents), attachments=list(env.attachments),
        about=env.subject or None, service=service, comment=env.comment, req_date_close=env.deadline,
    )
    header = Header(message_date=message_date or utcnow(), sender=_entity(env.sender, "sender"),
                    recipient=_entity(env.recipient, "recipient"), message_guid=message_guid or new_guid())
    return Message(header=header, body=DocumentRegistrationRequest(document=document, comment=comment))


def _party(entity: Entity) -> Party:
    return Party(eik=entity.identifier or None, guid=entity.guid, name=entity.name)


def _entity(party: Party, role: str) -> Entity:
    if not party.eik or not party.guid:
        # SEOS addresses a participant by both: the registry gives the GUID of an EIK (routing's job).
        raise Refused(f"the {role} needs both an EIK and a SEOS GUID to be sent over SEOS", code=f"missing-{role}")
    return Entity(identifier=party.eik, name=party.name, guid=party.guid)
