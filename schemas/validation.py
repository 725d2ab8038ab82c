"""The checks every document passes before the hub journals it, whatever source it came from.

One function, called once per document by the pipeline's ``admit``, so a document missing its recipient
or carrying too many attachments is refused with the same code whether a file drop, SEOS or a mailbox
table handed it in. Adapters keep only the checks they alone can make (a file drop: the file is there,
its name is safe, it matches its declared size and SHA-256, the document fits the streaming budget).
"""

from __future__ import annotations

from schemas.envelope import Envelope, Party
from schemas.errors import Refused
from schemas.identifiers import InvalidIdentifier, validate_eik
from schemas.limits import Limits

__all__ = ["CODES", "check_envelope"]

#: Every code :func:`check_envelope` refuses with, and what it means (FORMAT.md's code table lists them).
CODES: dict[str, str] = {
    "missing-sender": "the sender has neither an EIK/BULSTAT nor a SEOS GUID",
    "missing-recipient": "the recipient has neither an EIK/BULSTAT nor a SEOS GUID",
    "invalid-eik": "an EIK/BULSTAT is not 9 or 13 digits, or its check digits are wrong",
    "invalid-document": "the document kind is missing",
    "too-many-attachments": "more attachments than limits.max_attachments",
    "too-large": "the attachments together exceed limits.max_document_bytes",
}


def check_envelope(env: Envelope, limits: Limits) -> None:
    """Raise :class:`Refused` saying what is wrong with ``env`` and why, with one code per check."""
    _check_party(env.sender, "sender")
    _check_party(env.recipient, "recipient")
    if not env.kind:
        raise Refused('the document kind (DocKind, e.g. "Заповед") is missing', code="invalid-document")
    if len(env.attachments) > limits.max_attachments:
        raise Refused(
            f"{len(env.attachments)} attachments; at most {limits.max_attachments} are allowed",
            code="too-many-attachments",
        )
    total = sum(att.size for att in env.attachments)
    if total > limits.max_document_bytes:
        raise Refused(
            f"the document's files total {total} bytes; the limit is {limits.max_document_bytes}", code="too-large"
        )


def _check_party(party: Party, role: str) -> None:
    if not party.eik and not party.guid:
        raise Refused(f"the {role} has neither an EIK nor a SEOS GUID", code=f"missing-{role}")
    if party.eik:
        try:
            validate_eik(party.eik)
        except InvalidIdentifier as exc:
            raise Refused(f"{role}: {exc}", code="invalid-eik") from exc
