"""Routing rules: which destinations a document goes to.

Rules are tried in the order written; the first whose ``match`` fits decides (predictable for an
operator reading the file), and its ``deliver_to`` may fan out to several destinations. A document no
rule fits goes to ``default_route``; with no default route it is refused as an unknown recipient.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from router.config import DefaultRoute, MatchConfig, RouteConfig
from schemas.envelope import Envelope

__all__ = ["Route", "RoutingTable", "fits"]


@dataclass(frozen=True)
class Route:
    name: str
    destinations: tuple[str, ...]


def fits(match: MatchConfig, env: Envelope) -> bool:
    checks: list[tuple[list[str], str | None]] = [
        (match.source, env.source),
        (match.sender_eik, env.sender.eik),
        (match.sender_guid, env.sender.guid),
        (match.recipient_eik, env.recipient.eik),
        (match.recipient_guid, env.recipient.guid),
        (match.kind, env.kind.strip().casefold() if env.kind else None),
        (match.procedure_code, env.procedure_code),
    ]
    return all(not wanted or value in wanted for wanted, value in checks)


class RoutingTable:
    def __init__(self, routes: Sequence[RouteConfig], default: DefaultRoute | None) -> None:
        self._routes = [(r.match, Route(r.name, tuple(r.deliver_to))) for r in routes]
        self._default = Route("default", tuple(default.deliver_to)) if default else None

    def resolve(self, env: Envelope) -> Route | None:
        for match, route in self._routes:
            if fits(match, env):
                return route
        return self._default

    @property
    def destinations(self) -> set[str]:
        names = {d for _, r in self._routes for d in r.destinations}
        if self._default:
            names.update(self._default.destinations)
        return names
