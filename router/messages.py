"""What Kurier's queue messages carry, and how they are written and read.

A message carries a batch of envelopes (small: files stay in the payload store), so the broker's and
the client's cost per message is spread over many documents while every guarantee stays per envelope.
Every body is a pydantic model below: written once with ``model_dump_json`` and read once with
``model_validate_json``, which parses and validates in one pass of pydantic's compiled core. So an
envelope is serialised once per queue hop and parsed once per hop consumed, and no JSON is put
together by hand. This is the hottest path of every worker.

    inbound      InboundBody    {"envelopes": [Envelope, …]}
    deliver.<d>  DeliveryBody   {"destination": d, "deliveries": [{"id": delivery id, "envelope": …}, …]}
    dead         DeadLetter     {"reason": …, "queue": …, "body": the unreadable body | "envelope": …}

The headers repeat the correlation ids (``envelope_ids``) and how many items a message holds
(``count``, which the batch consumer reads to size its batches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from kombu import Message
from pydantic import BaseModel, ValidationError

from router.queues import OutMessage, Topology
from schemas.envelope import Envelope
from schemas.errors import Permanent

__all__ = [
    "DeadLetter",
    "Delivery",
    "DeliveryBody",
    "InboundBody",
    "UnreadableMessage",
    "dead_envelope",
    "dead_letter",
    "delivery_messages",
    "inbound_messages",
    "read_deliveries",
    "read_inbound",
]

# Bodies ignore fields they do not know (pydantic's default), so a newer hub's messages stay readable
# by an older worker during a rolling upgrade; the envelope inside is strict (``extra="forbid"``).


class InboundBody(BaseModel):
    """A message for the processing stage: envelopes received and journaled."""

    envelopes: list[Envelope]


class Delivery(BaseModel):
    id: str  # the delivery id, "<envelope id>:<destination>": the destination's idempotency key
    envelope: Envelope


class DeliveryBody(BaseModel):
    """A message for one destination's delivery queue."""

    destination: str
    deliveries: list[Delivery]


class DeadLetter(BaseModel):
    """What an operator finds in the dead-letter queue: the reason, and what could not be placed."""

    reason: str
    queue: str | None = None  # the routing key the message came in on, when it was a whole message
    body: str | None = None  # a whole unreadable message, as received
    delivery_id: str | None = None
    envelope: Envelope | None = None  # one readable envelope Kurier cannot place


class UnreadableMessage(Permanent, ValueError):
    """A queue message that is not a body Kurier writes: it goes whole to the dead letters.

    Also a ValueError, as pydantic's errors were that readers of these functions used to catch.
    """

    code = "unreadable-message"


_MAX_IDS_HEADER = 4000  # characters: broker tools show headers, and AMQP frames have limits
_MAX_DEAD_BODY = 100_000  # characters of an unreadable body kept in its dead letter
_Body = TypeVar("_Body", bound=BaseModel)


def _write(body: BaseModel) -> str:
    # Fields that are None are left out, as Envelope.to_json does: shorter messages, same model when read.
    return body.model_dump_json(exclude_none=True)


def _read(model: type[_Body], message: Message) -> _Body:
    try:
        return model.model_validate_json(message.body)
    except ValidationError as exc:
        raise UnreadableMessage(_problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    """pydantic's errors on one line, without the input it echoes (a whole body can be megabytes)."""
    shown = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:3]]
    more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(shown) + more


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), max(1, size))]


def _ids_header(ids: Sequence[str]) -> str:
    """As many whole ids as fit: a cut id would point an operator at a document that does not exist."""
    taken: list[str] = []
    length = 0
    for eid in ids:
        length += len(eid) + (1 if taken else 0)
        if length > _MAX_IDS_HEADER:
            break
        taken.append(eid)
    return ",".join(taken)


def _headers(envs: Sequence[Envelope]) -> dict[str, Any]:
    # The correlation ids travel in the headers too, so an operator can tell from the broker's own
    # tools which documents a stuck message holds.
    return {"count": len(envs), "envelope_ids": _ids_header([e.id for e in envs])}


def inbound_messages(envs: Sequence[Envelope], per_message: int) -> list[OutMessage]:
    """Envelopes for the processing stage, up to ``per_message`` in one message."""
    return [OutMessage("inbound", _write(InboundBody(envelopes=list(chunk))), _headers(chunk))
            for chunk in _chunks(envs, per_message)]


def delivery_messages(items: Sequence[tuple[str, str, Envelope]], per_message: int) -> list[OutMessage]:
    """(delivery id, destination, envelope) items: one message per destination and chunk."""
    by_destination: dict[str, list[tuple[str, Envelope]]] = {}
    for did, dest, env in items:
        by_destination.setdefault(dest, []).append((did, env))
    out = []
    for dest, entries in by_destination.items():
        for chunk in _chunks(entries, per_message):
            body = DeliveryBody(destination=dest, deliveries=[Delivery(id=did, envelope=env) for did, env in chunk])
            out.append(OutMessage(Topology.delivery_key(dest), _write(body), _headers([env for _, env in chunk])))
    return out


def read_inbound(message: Message) -> list[Envelope]:
    """The envelopes of an inbound message; raises :class:`UnreadableMessage` saying what is wrong."""
    return _read(InboundBody, message).envelopes


def read_deliveries(message: Message) -> list[tuple[str, str, Envelope]]:
    """(delivery id, destination, envelope) of a delivery message; raises :class:`UnreadableMessage`."""
    body = _read(DeliveryBody, message)
    return [(d.id, body.destination, d.envelope) for d in body.deliveries]


def dead_letter(message: Message, reason: str) -> OutMessage:
    """A whole message that cannot be read, kept with the reason for an operator."""
    raw = message.body
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "backslashreplace")
    info = message.delivery_info or {}
    headers: dict[str, Any] = {"reason": reason[:500]}
    original = message.headers or {}
    if original.get("envelope_ids"):
        headers["envelope_ids"] = original["envelope_ids"]  # what the writer said it holds
    letter = DeadLetter(reason=reason, queue=info.get("routing_key"), body=text[:_MAX_DEAD_BODY])
    return OutMessage("dead", _write(letter), headers)


def dead_envelope(env: Envelope, reason: str, delivery_id: str | None = None) -> OutMessage:
    """One envelope out of a readable message that Kurier cannot place (e.g. unknown to the journal)."""
    letter = DeadLetter(reason=reason, delivery_id=delivery_id, envelope=env)
    return OutMessage("dead", _write(letter), {"reason": reason[:500], "count": 1, "envelope_ids": env.id})
