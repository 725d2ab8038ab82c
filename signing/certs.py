"""Certificates from files: PEM (one or several) or DER, as trust anchors are handed to Kurier."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from schemas.errors import ConfigError

if TYPE_CHECKING:
    from asn1crypto import x509

__all__ = ["read_certificates"]


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in ``path``; :class:`ConfigError` naming the file when there is none."""
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read certificates from {path}: {exc.strerror}") from exc
    try:
        if pem.detect(data):
            certs = [asn1_x509.Certificate.load(der) for kind, _, der in pem.unarmor(data, multiple=True)
                     if kind == "CERTIFICATE"]
        else:
            certs = [asn1_x509.Certificate.load(data)]
            certs[0].native  # noqa: B018 - parse now: a broken file fails here, not deep in validation
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM or DER certificate ({exc})") from exc
    if not certs:
        raise ConfigError(f"{path}: no certificate in it")
    return certs
