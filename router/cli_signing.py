"""``kurier pki init``, ``kurier sign`` and ``kurier verify``: check a signer and a document without the hub.

With no signer named in the configuration they use the test PKI (``kurier pki init``, by default in
``<data_dir>/pki``): its first signer signs, its root is the trust anchor, and its TSA, OCSP and CRL
services are started on 127.0.0.1 for the command's duration when nothing serves them already.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from schemas.errors import ConfigError, KurierError

if TYPE_CHECKING:
    from router.config import KurierConfig
    from signing.pki import PkiFiles
    from signing.report import SignatureReport

__all__ = ["pki_app", "register"]

console = Console(soft_wrap=True)  # reports and paths are copied: never break their lines
pki_app = typer.Typer(help="The test PKI (root and qualified CA, TSA, OCSP, CRLs, a signer per administration).",
                      no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file")]
PkiOption = Annotated[Path | None, typer.Option("--pki", help="the test PKI's directory (default <data_dir>/pki)")]


def register(app: typer.Typer) -> None:
    """Add the signing commands to the ``kurier`` command."""
    app.add_typer(pki_app, name="pki")
    app.command("sign")(sign)
    app.command("verify")(verify)


def _config(config: Path | None) -> KurierConfig:
    from router.cli import _load

    return _load(config)[0]


def _fail(exc: KurierError) -> typer.Exit:
    console.print(f"[red]{exc}[/red]")
    return typer.Exit(2)


def _pki(config: Path | None, directory: Path | None) -> PkiFiles:
    from signing.pki import load_pki

    try:
        return load_pki(directory or _config(config).data_dir / "pki")
    except ConfigError as exc:
        raise _fail(exc) from None


def configured_eiks(cfg: KurierConfig) -> list[str]:
    """The administrations the configuration names: EIKs in route matches and connection options."""
    eiks: list[str] = []
    for route in cfg.routes:
        eiks += [*route.match.sender_eik, *route.match.recipient_eik]
    for conn in cfg.connections.values():
        value = conn.options.get("eik")
        eiks += [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []
    return list(dict.fromkeys(eiks))


@pki_app.command("init")
def pki_init(
    config: ConfigOption = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="where (default <data_dir>/pki)")] = None,
    eik: Annotated[list[str] | None, typer.Option("--eik", help="an administration's EIK (repeatable)")] = None,
) -> None:
    """Build a test PKI and print where each file is."""
    from signing.pki import DEMO_EIKS, build_pki

    cfg = _config(config)
    eiks = list(eik or configured_eiks(cfg) or DEMO_EIKS)
    target = directory or cfg.data_dir / "pki"
    try:
        pki = build_pki(target, eiks)
    except KurierError as exc:
        raise _fail(exc) from None
    # One line per file, never wrapped: an operator copies these paths.
    typer.echo(f"test PKI in {pki.directory} (its services: {pki.service_url})")
    width = max(len(what) for what in pki.files())
    for what, path in pki.files().items():
        typer.echo(f"  {what:<{width}}  {path}")


@contextlib.contextmanager
def pki_services(pki: PkiFiles) -> Iterator[None]:
    """The test PKI's TSA/OCSP/CRL services for one command, unless something already listens on their port."""
    from signing.pkiserver import PkiServer

    server = PkiServer(pki)
    try:
        server.start()
    except OSError:  # the port is taken: a demo or another command serves this PKI already
        yield
        return
    try:
        yield
    finally:
        server.stop()


def _pick_signer(pki: PkiFiles, name: str | None) -> str:
    if name is None:
        valid = pki.valid_signers()
        if not valid:
            raise _fail(ConfigError(f"the test PKI in {pki.directory} has no valid signer"))
        return valid[0].label
    for label, files in pki.signers.items():
        if name in (label, files.eik) and (name == label or files.status == "valid"):
            return label
    raise _fail(ConfigError(f"no signer {name!r} in the test PKI (known: {', '.join(pki.signers)})"))


def sign(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the document to sign")],
    output: Annotated[Path, typer.Argument(help="where to write the signed document")],
    format: Annotated[str, typer.Option("--format", help="pades (PDF), xades (XML, enveloped) or cades (any "
                                        "file: OUT is the detached .p7s)")] = "pades",
    level: Annotated[str, typer.Option("--level", help="B-B, B-T (timestamped) or B-LT (with validation data)")]
    = "B-B",
    signer: Annotated[str | None, typer.Option("--signer", help="a test PKI signer (label or EIK); default "
                                               "the first")] = None,
    tsa_url: Annotated[str | None, typer.Option("--tsa-url", help="RFC 3161 service (default: the test PKI's)")]
    = None,
    reason: Annotated[str | None, typer.Option(help="the signature's stated reason")] = None,
    location: Annotated[str | None, typer.Option(help="the signature's stated location")] = None,
    pki_dir: PkiOption = None,
    config: ConfigOption = None,
) -> None:
    """Sign one document with a key of the test PKI."""
    from signing.certs import read_certificates
    from signing.formats import SignOptions, sign_document
    from signing.pades import LEVELS

    if level not in LEVELS:
        raise _fail(ConfigError(f"--level: {level!r} is not one of {', '.join(LEVELS)}"))
    logging.basicConfig(level=logging.ERROR)
    pki = _pki(config, pki_dir)
    label = _pick_signer(pki, signer)
    try:
        key = pki.signers[label].key()
        options = SignOptions(level=level, tsa_url=tsa_url or pki.tsa_url, reason=reason, location=location,
                              trust_roots=tuple(read_certificates(pki.root)))
        # The test PKI's services: its TSA for B-T, and its OCSP/CRLs for the validation data of B-LT.
        wanted = level == "B-LT" or (level == "B-T" and tsa_url is None)
        with pki_services(pki) if wanted else contextlib.nullcontext():
            sign_document(format, key, source, output, options)
    except KurierError as exc:
        raise _fail(exc) from None
    cert = key.certificate()
    console.print(f"signed {output} ({format} {level}) as {cert.subject.human_friendly}")
    if not cert.not_valid_before <= datetime.now(UTC) <= cert.not_valid_after:
        console.print(f"[yellow]warning: the certificate is valid only from {cert.not_valid_before:%Y-%m-%d} to "
                      f"{cert.not_valid_after:%Y-%m-%d}: verifiers will reject this signature[/yellow]")


def _print(path: Path, reports: list[SignatureReport]) -> None:
    for i, r in enumerate(reports, 1):
        colour = "green" if r.ok else "red"
        console.print(f"[bold]{path.name}[/bold] signature {i}: [{colour}]{r.status.value.upper()}[/{colour}] "
                      f"— {r.reason}")
        for label, value in (("signer", r.signer), ("EIK", r.signer_eik), ("level", r.level),
                             ("signed at", r.signed_at), ("timestamp", r.timestamp),
                             ("chain", " ← ".join(r.chain) if r.chain else None),
                             ("weak", ", ".join(r.weak) if r.weak else None)):
            if value:
                console.print(f"  {label}: {value}", highlight=False)


def verify(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="the signed document")],
    as_json: Annotated[bool, typer.Option("--json", help="the reports as JSON")] = False,
    trust: Annotated[list[Path] | None, typer.Option("--trust", help="trust anchors, PEM (repeatable; default: "
                                                     "the test PKI's root)")] = None,
    format: Annotated[str | None, typer.Option("--format", help="default: from the file's content")] = None,
    pki_dir: PkiOption = None,
    config: ConfigOption = None,
) -> None:
    """Check every signature of a document; exit 0 only when all are valid and trusted."""
    from signing.certs import read_certificates
    from signing.formats import validate_document

    logging.basicConfig(level=logging.CRITICAL)  # pyhanko logs each failed path build with a traceback
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    try:
        if trust:
            roots = [c for p in trust for c in read_certificates(p)]
            services: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
        else:
            pki = _pki(config, pki_dir)
            roots, services = read_certificates(pki.root), pki_services(pki)
        with services:
            reports = validate_document(path, roots, format)
    except KurierError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in reports], indent=2, ensure_ascii=False))
    else:
        _print(path, reports)
    raise typer.Exit(0 if reports and all(r.ok for r in reports) else 1)
