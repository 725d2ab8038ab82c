"""What Kurier's queue messages carry, and how they are written and read.

A message carries a batch of envelopes (small: files stay in the payload store), so the broker's and
the client's cost per message is spread over many documents while every guarantee stays per envelope.
Bodies are JSON written and read by pydantic's compiled core, not by Python's json module: this is the
hottest path of every worker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kombu import Message
from pydantic import BaseModel

from router.queues import OutMessage, Topology
from schemas.envelope import Envelope

__all__ = ["dead_envelope", "dead_letter", "delivery_messages", "inbound_messages", "read_deliveries", "read_inbound"]


class _InboundBody(BaseModel):
    envelopes: list[Envelope]


class _Delivery(BaseModel):
    id: str
    envelope: Envelope


class _DeliveryBody(BaseModel):
    destination: str
    deliveries: list[_Delivery]


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), max(1, size))]


def _headers(envs: Sequence[Envelope]) -> dict[str, Any]:
    # The correlation ids travel in the headers too, so an operator can tell from the broker's own
    # tools which documents a stuck message holds.
    return {"count": len(envs), "envelope_ids": ",".join(e.id for e in envs)[:4000]}


def inbound_messages(envs: Sequence[Envelope], per_message: int) -> list[OutMessage]:
    """Envelopes for the processing stage, up to ``per_message`` in one message."""
    return [
        OutMessage("inbound", '{"envelopes":[' + ",".join(e.to_json() for e in chunk) + "]}", _headers(chunk))
        for chunk in _chunks(envs, per_message)
    ]


def delivery_messages(items: Sequence[tuple[str, str, Envelope]], per_message: int) -> list[OutMessage]:
    """(delivery id, destination, envelope) items: one message per destination and chunk."""
    by_destination: dict[str, list[tuple[str, Envelope]]] = {}
    for did, dest, env in items:
        by_destination.setdefault(dest, []).append((did, env))
    out = []
    for dest, entries in by_destination.items():
        for chunk in _chunks(entries, per_message):
            parts = ",".join('{"id":' + json.dumps(did) + ',"envelope":' + env.to_json() + "}" for did, env in chunk)
            body = '{"destination":' + json.dumps(dest) + ',"deliveries":[' + parts + "]}"
            out.append(OutMessage(Topology.delivery_key(dest), body, _headers([env for _, env in chunk])))
    return out


def read_inbound(message: Message) -> list[Envelope]:
    """The envelopes of an inbound message; raises ValueError (pydantic's) for an unreadable one."""
    return _InboundBody.model_validate_json(message.body).envelopes


def read_deliveries(message: Message) -> list[tuple[str, str, Envelope]]:
    body = _DeliveryBody.model_validate_json(message.body)
    return [(d.id, body.destination, d.envelope) for d in body.deliveries]


def dead_letter(message: Message, reason: str) -> OutMessage:
    """A whole message that cannot be read, kept with the reason for an operator."""
    raw = message.body if isinstance(message.body, str) else repr(message.body)[:100_000]
    info = message.delivery_info or {}
    return OutMessage("dead", {"reason": reason, "queue": info.get("routing_key"), "body": raw},
                      {"reason": reason[:500]})


def dead_envelope(env: Envelope, reason: str, delivery_id: str | None = None) -> OutMessage:
    """One envelope out of a readable message that Kurier cannot place (e.g. unknown to the journal)."""
    body = '{"reason":' + json.dumps(reason) + ',"delivery_id":' + json.dumps(delivery_id) + \
        ',"envelope":' + env.to_json() + "}"
    return OutMessage("dead", body, {"reason": reason[:500], "count": 1, "envelope_ids": env.id})
