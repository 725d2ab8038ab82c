"""Signature formats by name: the one dispatch point for ``kurier sign`` / ``kurier verify`` (and the hub).

Each format has a signer ``(key, source, output, options) -> None`` (file to file) and a validator
``(path, trust_roots) -> list[SignatureReport]``, resolved lazily (``module:function``) so naming a
format imports only its library. PAdES is here; XAdES and CAdES plug in by adding their entries
(``signing.xades:sign_xades`` / ``verify_xml``, ``signing.cades:sign_cades`` / ``verify_cades``,
wrapped to these shapes where theirs differ).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from schemas.errors import ConfigError

if TYPE_CHECKING:
    from asn1crypto import x509

    from signing.keys import KeySource
    from signing.report import SignatureReport

__all__ = ["SIGNERS", "VALIDATORS", "SignOptions", "detect_format", "sign_document", "validate_document"]


@dataclass(frozen=True)
class SignOptions:
    """What a format's signer may use; each format takes what applies to it."""

    level: str = "B-B"
    tsa_url: str | None = None
    trust_roots: tuple[x509.Certificate, ...] = ()  # for levels that embed validation data (B-LT)
    reason: str | None = None
    location: str | None = None
    signer_name: str | None = None
    field_name: str | None = None


#: format → "module:function" signing a file to a file.
SIGNERS: dict[str, str] = {
    "pades": "signing.formats:sign_pades",
}

#: format → "module:function" returning one SignatureReport per signature.
VALIDATORS: dict[str, str] = {
    "pades": "signing.pades_verify:validate_pdf",
}


def _resolve(table: dict[str, str], fmt: str, what: str) -> Callable[..., Any]:
    try:
        target = table[fmt]
    except KeyError:
        raise ConfigError(f"{what} format {fmt!r} is not available (known: {', '.join(sorted(table))})") from None
    module, _, attribute = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), attribute)
    return function


def detect_format(path: Path) -> str:
    """The format a file's signatures are in, from its first bytes: PDF → pades, XML → xades, else cades."""
    with path.open("rb") as fh:
        head = fh.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"%PDF-") or b"%PDF-" in head:
        return "pades"
    if head.startswith(b"<"):
        return "xades"
    return "cades"


def sign_document(fmt: str, key: KeySource, source: Path, output: Path, options: SignOptions) -> None:
    _resolve(SIGNERS, fmt, "signature")(key, source, output, options)


def validate_document(path: Path, trust_roots: list[x509.Certificate], fmt: str | None = None) -> list[SignatureReport]:
    reports: list[SignatureReport] = _resolve(VALIDATORS, fmt or detect_format(path), "validation")(path, trust_roots)
    return reports


def sign_pades(key: KeySource, source: Path, output: Path, options: SignOptions) -> None:
    from signing.pades import PadesSettings, PadesSigner

    settings = PadesSettings(level=options.level, tsa_url=options.tsa_url, reason=options.reason,
                             location=options.location, signer_name=options.signer_name,
                             **({"field_name": options.field_name} if options.field_name else {}))
    PadesSigner(key, settings, trust_roots=list(options.trust_roots)).sign_file(source, output)
