"""Names in configuration resolved lazily through an alias table (``name → "module:attribute"``).

The way kombu resolves transports: naming a signer kind, a key type or a format imports only its module,
so ``import signing`` loads no pyhanko, no PKCS#11 library and no HTTP client.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from schemas.errors import ConfigError

__all__ = ["resolve"]


def resolve(table: Mapping[str, str], name: str, unknown: str) -> Any:
    """The attribute ``table[name]`` names; :class:`ConfigError` ``"<unknown> (known: …)"`` for a name not there."""
    try:
        target = table[name]
    except KeyError:
        raise ConfigError(f"{unknown} (known: {', '.join(sorted(table))})") from None
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
