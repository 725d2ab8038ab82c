"""Adapters connect Kurier to the outside: each legacy AIS, the national exchange, the signing service.

Adapter kinds are named in configuration (``connections.<name>.adapter: filedrop``) and resolved lazily
through the alias table below, the way kombu resolves transports, so ``import router`` does not import
zeep, pyhanko or database drivers that this deployment never uses. Every kind module offers the same
small surface:

- ``Settings``: a pydantic model of the kind's own keys (unknown keys refused);
- ``roles(settings)``: which of ``source`` / ``destination`` those settings give the connection,
  decided without touching the outside world (``kurier check-config`` uses it);
- ``create(name, settings, ctx)``: the :class:`Connection`, sharing its clients between both roles;
- a ``testing`` module with the fakes the tests, the contract suite and the demo use.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError

from adapters.base import (
    AdapterContext,
    Connection,
    Destination,
    Intake,
    PollingSource,
    Receipt,
    Source,
    StatusReporter,
)
from schemas.errors import ConfigError

__all__ = [
    "ADAPTER_KINDS",
    "AdapterContext",
    "Connection",
    "ConnectionPlan",
    "Destination",
    "Intake",
    "PollingSource",
    "Receipt",
    "Source",
    "StatusReporter",
    "build_connection",
    "load_kind",
    "plan_connection",
]

ADAPTER_KINDS: dict[str, str] = {
    "filedrop": "adapters.filedrop",
    "memory": "adapters.memory",
}

SOURCE, DESTINATION = "source", "destination"


def load_kind(kind: str) -> ModuleType:
    try:
        module_name = ADAPTER_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(ADAPTER_KINDS))
        raise ConfigError(f"unknown adapter kind {kind!r} (known: {known})") from None
    return importlib.import_module(module_name)


@dataclass(frozen=True)
class ConnectionPlan:
    """A connection's settings checked and its roles known, nothing built yet."""

    name: str
    kind: str
    settings: BaseModel
    roles: frozenset[str]

    @property
    def is_source(self) -> bool:
        return SOURCE in self.roles

    @property
    def is_destination(self) -> bool:
        return DESTINATION in self.roles


def _format(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(settings)'}: "
        + ("unknown key (check its spelling)" if e["type"] == "extra_forbidden"
           else e["msg"].removeprefix("Value error, "))
        for e in exc.errors()
    )


def plan_connection(name: str, kind: str, options: dict[str, Any], where: str | None = None) -> ConnectionPlan:
    """Validate a connection's settings and tell its roles; raise :class:`ConfigError` naming the key."""
    where = where or f"connections.{name}"
    module = load_kind(kind)
    try:
        settings = module.Settings(**options)
    except ValidationError as exc:
        raise ConfigError(f"{where} (adapter {kind}): {_format(exc)}") from exc
    roles = frozenset(module.roles(settings))
    if not roles:
        raise ConfigError(f"{where} (adapter {kind}): the settings give it neither a source nor a destination role")
    return ConnectionPlan(name, kind, settings, roles)


def build_connection(plan: ConnectionPlan, ctx: AdapterContext) -> Connection:
    connection: Connection = load_kind(plan.kind).create(plan.name, plan.settings, ctx)
    return connection
