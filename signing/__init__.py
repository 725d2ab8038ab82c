"""Signing: the pipeline's sign stage (QES: PAdES, XAdES, XML-DSig) and the signers configuration names.

Signer kinds are named in configuration (``signing.signers.<name>.kind: testing``) and resolved lazily
through the alias table below, the way kombu resolves transports (``module:Class``), so ``import
router`` does not import pyhanko for a deployment that signs nothing. ``none`` is built in: a route
that names it (and every route, by default) passes its documents unsigned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.errors import ConfigError
from signing.base import NoSigning, Signer, SignerKind, SignResult
from signing.lazy import resolve

__all__ = [
    "BUILT_IN",
    "SIGNER_KINDS",
    "NoSigning",
    "RouteSigners",
    "SignResult",
    "Signer",
    "SignerKind",
    "SignerPlan",
    "SignerTable",
    "load_kind",
    "plan_signer",
]

SIGNER_KINDS: dict[str, str] = {
    "none": "signing.base:NoSigning",
    "testing": "signing.testing:FakeSigner",
    "qes": "signing.qes:QesSigner",
}

#: Signer names that need no declaration: name → kind.
BUILT_IN: dict[str, str] = {"none": "none"}


def load_kind(kind: str) -> type[SignerKind]:
    cls: type[SignerKind] = resolve(SIGNER_KINDS, kind, f"unknown signer kind {kind!r}")
    return cls


@dataclass(frozen=True)
class SignerPlan:
    """A signer's settings checked, nothing built yet."""

    name: str
    kind: str
    settings: BaseModel

    def build(self) -> Signer:
        return load_kind(self.kind)(self.name, self.settings)


def plan_signer(name: str, kind: str, options: Mapping[str, Any], where: str | None = None) -> SignerPlan:
    """Validate a signer's settings; raise :class:`ConfigError` naming the key and the problem."""
    where = where or f"signing.signers.{name}"
    try:
        cls = load_kind(kind)
    except ConfigError as exc:
        raise ConfigError(f"{where}.kind: {exc}") from None
    try:
        settings = cls.Settings(**options)
    except ValidationError as exc:
        problems = [
            f"{where}.{'.'.join(str(p) for p in e['loc'])}: "
            + ("unknown key (check its spelling)" if e["type"] == "extra_forbidden"
               else e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise ConfigError(f"{'; '.join(problems)} (signer kind {kind})") from exc
    return SignerPlan(name, kind, settings)


class RouteSigners:
    """One worker's signers: a signer object per configured signer, looked up by route name."""

    def __init__(self, signers: Mapping[str, Signer], routes: Mapping[str, str], default: str) -> None:
        self._signers, self._routes, self._default = dict(signers), dict(routes), default

    def for_route(self, route: str) -> tuple[str, Signer]:
        """The (signer name, signer) for the documents of ``route``."""
        name = self._routes.get(route, self._default)
        return name, self._signers[name]


class SignerTable:
    """Which signer signs which route, checked once; :meth:`build` makes a worker's own signer objects."""

    def __init__(self, plans: Mapping[str, SignerPlan], routes: Mapping[str, str] | None = None,
                 default: str = "none") -> None:
        self.plans = {name: SignerPlan(name, kind, load_kind(kind).Settings()) for name, kind in BUILT_IN.items()}
        self.plans.update(plans)
        self.routes = dict(routes or {})
        self.default = default
        for name in [*self.routes.values(), default]:
            if name not in self.plans:
                raise ConfigError(f"signing: no signer named {name!r} (known: {', '.join(sorted(self.plans))})")

    @classmethod
    def from_settings(cls, signers: Mapping[str, tuple[str, Mapping[str, Any]]], routes: Mapping[str, str],
                      default: str = "none") -> SignerTable:
        """From ``name → (kind, options)`` as configured; raises :class:`ConfigError` naming the key."""
        return cls({name: plan_signer(name, kind, options) for name, (kind, options) in signers.items()},
                   routes, default)

    def build(self) -> RouteSigners:
        # Only the signers some route can reach are made: a signer object may hold a session or a key.
        used = {*self.routes.values(), self.default}
        return RouteSigners({name: self.plans[name].build() for name in used}, self.routes, self.default)
