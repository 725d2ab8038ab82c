"""What a peer's synchronous answer to Kurier's ``Submit`` means for the delivery (domain.md §3).

The answer is itself a signed SEOS message: it is trusted only when its signature is valid and made
with the peer's registered certificate. Then:

- a status response (``DS_WAIT_REGISTRATION``, ``DS_ALREADY_RECEIVED``, or any later status) means the
  document is there: delivered, with that status;
- an ``MSG_Error`` refusing the MessageGUID as already received, in answer to a retry, means the first
  try did arrive (its answer was lost): delivered, as the protocol says a sender must read it;
- any other ``MSG_Error`` is final (:class:`~schemas.errors.DeliveryFailed`, with the peer's words), as
  the reference sender treats it; except ``ERR_INTERNAL``, the receiver's own trouble (its database
  down), which Kurier tries again later (:class:`~schemas.errors.Transient`);
- anything else (no answer, not SEOS, a signature that does not hold) is final too: the operator sees
  the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509

from schemas.errors import DeliveryFailed, Refused, Transient
from schemas.seos import DocStatus, DocumentStatusResponse, Error, ErrorType, Message, parse_message
from signing.xmldsig import verify_seos_message

__all__ = ["Delivered", "read_answer"]

_DUPLICATE_WORDS = ("вече", "дублиран", "duplicate", "already")


@dataclass(frozen=True)
class Delivered:
    """The peer has the document: in this status, said by this (signed) answer."""

    status: DocStatus
    message: Message
    duplicate: bool = False  # a retry refused as already received: the first try had arrived


def read_answer(data: bytes, *, sent_guid: str, retry: bool, peer_certificate_sn: str | None,
                trust_roots: Sequence[asn1_x509.Certificate]) -> Delivered:
    """Read the peer's answer to the message ``sent_guid``; raise what the delivery must do otherwise."""
    if not data.strip():
        raise DeliveryFailed("the peer answered with an empty SubmitResult, not the signed status a "
                             "registration request gets")
    try:
        message = parse_message(data)
    except Refused as exc:
        raise DeliveryFailed(f"the peer's answer is not a SEOS message: {exc}") from None
    verification = verify_seos_message(data, trust_roots=trust_roots)
    if not verification.report.ok or verification.certificate is None:
        raise DeliveryFailed(f"the peer's answer is not validly signed: {verification.report.reason}")
    serial = format(verification.certificate.serial_number, "X")
    if peer_certificate_sn and serial != peer_certificate_sn.upper():
        raise DeliveryFailed(f"the peer's answer is signed with certificate {serial}, not its registered "
                             f"{peer_certificate_sn}")
    body = message.body
    if isinstance(body, DocumentStatusResponse):
        return Delivered(body.status, message)
    if isinstance(body, Error):
        words = body.description
        if retry and body.message_guid == sent_guid and any(w in words.lower() for w in _DUPLICATE_WORDS):
            return Delivered(DocStatus.ALREADY_RECEIVED, message, duplicate=True)
        if body.error_type is ErrorType.INTERNAL:
            raise Transient(f"the peer could not take the message for now (ERR_INTERNAL): {words}")
        raise DeliveryFailed(f"the peer refused the message: {words}")
    raise DeliveryFailed(f"the peer answered with a {message.message_type}, not a status response")
