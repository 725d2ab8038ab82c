"""Adapters connect Kurier to the outside: each legacy AIS, the national exchange, the signing service.

Adapter kinds are named in configuration (``adapter: filedrop``) and resolved lazily through the alias
table below, the way kombu resolves transports, so ``import router`` does not import zeep, pyhanko or
database drivers that this deployment never uses. Every kind module offers the same small surface:
``SourceSettings`` / ``DestinationSettings`` (pydantic models, unknown keys refused),
``create_source(name, settings, ctx)`` / ``create_destination(name, settings, ctx)``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from pydantic import ValidationError

from adapters.base import AdapterContext, Destination, Intake, PollingSource, Receipt, Source
from router.errors import ConfigError

__all__ = [
    "ADAPTER_KINDS",
    "AdapterContext",
    "Destination",
    "Intake",
    "PollingSource",
    "Receipt",
    "Source",
    "build_destination",
    "build_source",
    "load_kind",
]

ADAPTER_KINDS: dict[str, str] = {
    "filedrop": "adapters.filedrop",
    "memory": "adapters.memory",
}


def load_kind(kind: str) -> ModuleType:
    try:
        module_name = ADAPTER_KINDS[kind]
    except KeyError:
        known = ", ".join(sorted(ADAPTER_KINDS))
        raise ConfigError(f"unknown adapter kind {kind!r} (known: {known})") from None
    return importlib.import_module(module_name)


def _settings(kind: str, role: str, where: str, options: dict[str, Any]) -> Any:
    module = load_kind(kind)
    model = getattr(module, f"{role.capitalize()}Settings", None)
    if model is None:
        raise ConfigError(f"{where}: adapter {kind!r} cannot be used as a {role}")
    try:
        return module, model(**options)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: "
            + ("unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        )
        raise ConfigError(f"{where}: {problems}") from exc


def build_source(name: str, kind: str, options: dict[str, Any], ctx: AdapterContext) -> Source:
    module, settings = _settings(kind, "source", f"sources.{name}", options)
    source: Source = module.create_source(name, settings, ctx)
    return source


def build_destination(name: str, kind: str, options: dict[str, Any], ctx: AdapterContext) -> Destination:
    module, settings = _settings(kind, "destination", f"destinations.{name}", options)
    destination: Destination = module.create_destination(name, settings, ctx)
    return destination
