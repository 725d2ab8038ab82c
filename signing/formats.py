"""Signature formats by name: the one dispatch point for ``kurier sign`` / ``kurier verify`` (and the hub).

Each format has a signer ``(key, source, output, options) -> None`` (file to file) and a validator
``(path, trust_roots) -> list[SignatureReport]``, resolved lazily (``module:function``) so naming a
format imports only its library. XAdES signs XML enveloped (the output is the signed XML); CAdES
writes a detached signature (the output is the ``.p7s``), and validating one needs its data file: the
``.p7s`` beside it, found by name (``contract.pdf.p7s`` is the signature of ``contract.pdf``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signing.lazy import resolve

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
    "xades": "signing.formats:sign_xades_file",
    "cades": "signing.formats:sign_cades_file",
}

#: format → "module:function" returning one SignatureReport per signature.
VALIDATORS: dict[str, str] = {
    "pades": "signing.pades_verify:validate_pdf",
    "xades": "signing.formats:validate_xml_file",
    "cades": "signing.formats:validate_cades_file",
}


def _resolve(table: dict[str, str], fmt: str, what: str) -> Callable[..., Any]:
    function: Callable[..., Any] = resolve(table, fmt, f"{what} format {fmt!r} is not available")
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


def pades_signer(key: KeySource, options: SignOptions) -> Any:
    """A :class:`~signing.pades.PadesSigner` for ``options``; keep it to sign many (it prepares its CMS once)."""
    from signing.pades import PadesSettings, PadesSigner

    settings = PadesSettings(level=options.level, tsa_url=options.tsa_url, reason=options.reason,
                             location=options.location, signer_name=options.signer_name,
                             **({"field_name": options.field_name} if options.field_name else {}))
    return PadesSigner(key, settings, trust_roots=list(options.trust_roots))


def sign_pades(key: KeySource, source: Path, output: Path, options: SignOptions) -> None:
    pades_signer(key, options).sign_file(source, output)


def sign_xades_file(key: KeySource, source: Path, output: Path, options: SignOptions) -> None:
    from signing.xades import sign_xades

    output.write_bytes(sign_xades(source.read_bytes(), key, "enveloped", file_name=source.name))


def sign_cades_file(key: KeySource, source: Path, output: Path, options: SignOptions) -> None:
    from signing.cades import sign_cades

    output.write_bytes(sign_cades(source, key))


def validate_xml_file(path: Path, trust_roots: list[x509.Certificate]) -> list[SignatureReport]:
    from signing.xades import verify_xml

    return verify_xml(path.read_bytes(), trust_roots=trust_roots, file_name=path.name)


def validate_cades_file(path: Path, trust_roots: list[x509.Certificate]) -> list[SignatureReport]:
    """``path`` is the data file (its signature is ``<path>.p7s``) or the ``.p7s`` (its data beside it)."""
    from signing.cades import verify_cades
    from signing.report import SignatureReport, SignatureStatus

    data, signature = (path.with_suffix(""), path) if path.suffix.lower() == ".p7s" else \
        (path, path.with_name(path.name + ".p7s"))
    if not signature.is_file() or not data.is_file():
        missing = signature if not signature.is_file() else data
        return [SignatureReport(format="cades", file_name=data.name, status=SignatureStatus.INVALID,
                                reason=f"no detached signature to check: {missing.name} is not there")]
    return [verify_cades(data, signature.read_bytes(), trust_roots, file_name=data.name)]
