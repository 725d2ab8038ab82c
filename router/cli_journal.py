"""``kurier journal``: the sealed journal, checked (and sealed on demand) by an operator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from schemas.errors import ConfigError, redact_secrets

__all__ = ["journal_app"]

journal_app = typer.Typer(help="The sealed journal: hash-chained evidence rows, timestamped heads.",
                          no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file "
                                                   "(default: $KURIER_CONFIG, else ./kurier.yaml if present)")]


@journal_app.command("verify")
def verify(
    config: ConfigOption = None,
    lag: Annotated[float | None, typer.Option(help="seconds a row may wait unsealed "
                                              "(default: seal.lag_seconds)")] = None,
    tsa_trust: Annotated[list[Path] | None, typer.Option("--tsa-trust", help="the TSA's trust anchor, PEM or DER "
                                                         "(default: seal.tsa_trust)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> None:
    """Check every seal block, every sealed row and every timestamp; exit 0 only when the journal is intact."""
    from sqlalchemy.exc import SQLAlchemyError

    from router.cli import _load, console
    from router.journal.db import make_engine
    from router.journal.sealcheck import verify_seals
    from router.journal.tsa import load_certificates

    cfg, _ = _load(config)
    engine = make_engine(cfg.resolved_journal_url)
    try:
        trust = load_certificates(tsa_trust or [cfg.resolve_path(p) for p in cfg.seal.tsa_trust])
        report = verify_seals(engine, lag_seconds=cfg.seal.lag_seconds if lag is None else lag, trust=trust)
    except (ConfigError, OSError, ValueError) as exc:
        console.print(f"[red]cannot read the TSA's trust anchors: {exc}[/red]")
        raise typer.Exit(2) from exc
    except SQLAlchemyError as exc:
        console.print(f"[red]cannot read the journal: {redact_secrets(str(exc))} (`kurier db upgrade` creates "
                      "the seal table)[/red]")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps({
            "intact": report.intact, "blocks": report.blocks, "rows": report.rows, "timestamps": report.timestamps,
            "last_timestamp": report.last_timestamp.isoformat() if report.last_timestamp else None,
            "pending": report.pending, "more": report.more, "head": report.head, "head_block": report.head_block,
            "first_row": report.first_row.what if report.first_row else None,
            "findings": [{"kind": f.kind, "table": f.table, "row_id": f.row_id, "block": f.block, "what": f.what}
                         for f in report.findings]}, ensure_ascii=False, indent=2))
        raise typer.Exit(0 if report.intact else 1)
    stamped = (f", {report.timestamps} timestamp(s) verified (last {report.last_timestamp:%Y-%m-%d %H:%M:%S %Z})"
               if report.last_timestamp else ", no timestamps")
    console.print(f"{report.blocks} seal block(s), {report.rows} sealed row(s){stamped}, "
                  f"{report.pending} row(s) not sealed yet (within the lag)")
    if report.head:
        console.print(f"newest head: block {report.head_block}, {report.head}")
    if report.intact:
        console.print("[green]the journal is intact / дневникът е непокътнат[/green]")
        return
    first = report.first_row
    if first is not None:
        console.print(f"[bold red]first changed or removed row: {first.what}[/bold red]")
    for finding in report.findings:
        console.print(f"[red]- {finding.kind}: {finding.what}[/red]")
    if report.more:
        console.print(f"[red]... and {report.more} more[/red]")
    console.print("[bold red]the journal is NOT intact / дневникът е променен[/bold red]")
    raise typer.Exit(1)


@journal_app.command("seal")
def seal(
    config: ConfigOption = None,
    stamp: Annotated[bool, typer.Option(help="also timestamp the newest head now (seal.tsa_url)")] = False,
) -> None:
    """Seal what is committed now (the hub's sealer does this every few seconds)."""
    from router.cli import _load, console
    from router.journal.db import make_engine
    from router.sealer import Sealer

    cfg, _ = _load(config)
    engine = make_engine(cfg.resolved_journal_url)
    try:
        import threading

        sealer = Sealer(engine, cfg.seal, threading.Event())
        rows = sealer.seal()
        stamped = stamp and sealer.stamp(force=True)
    finally:
        engine.dispose()
    console.print(f"{rows} row(s) sealed" + ("; the head is timestamped" if stamped else ""))
