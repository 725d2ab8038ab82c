"""From configuration to connections: each one's settings checked and its roles matched to the routes.

Nothing here touches the outside world (no folder, database or socket), so ``kurier check-config``
can run it on a machine where the configuration will only be deployed.
"""

from __future__ import annotations

from adapters import ConnectionPlan, plan_connection
from router.config import KurierConfig
from schemas.errors import ConfigError

__all__ = ["plan_connections"]


def plan_connections(config: KurierConfig) -> dict[str, ConnectionPlan]:
    """Every connection's checked settings; raise :class:`ConfigError` naming the file, key and problem."""
    where = f"{config.config_file}: " if config.config_file else ""
    try:
        plans = {name: plan_connection(name, cfg.adapter, cfg.options) for name, cfg in config.connections.items()}
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from exc
    uses = [(f"routes[{i}] {r.name!r}", r.deliver_to, r.match.source) for i, r in enumerate(config.routes)]
    if config.default_route:
        uses.append(("default_route", config.default_route.deliver_to, []))
    for what, deliver_to, sources in uses:
        for name in deliver_to:
            if not plans[name].is_destination:
                raise ConfigError(f"{where}{what}: deliver_to names {name!r}, but that connection ({plans[name].kind}) "
                                  "cannot deliver with its settings (a file drop needs an outbox)")
        for name in sources:
            if not plans[name].is_source:
                raise ConfigError(f"{where}{what}: match.source names {name!r}, but that connection "
                                  f"({plans[name].kind}) hands in no documents (a file drop needs an inbox)")
    return plans
