"""``kurier messages wire ID --out DIR``: the SEOS messages of one document, each as its own file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def wire(
    envelope_id: str,
    out: Annotated[Path, typer.Option("--out", help="the folder to write the messages into (made if missing)")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="kurier.yaml")] = None,
) -> None:
    """Write each SEOS message sent and received for a document, byte for byte (the signed Message XML),
    as <time>_<in|out>_<message type>.xml, and the TLS peer's certificate beside it as .cer."""
    from router.cli import _journal, console

    with _journal(config) as journal:
        records = journal.wire(envelope_id)
    if not records:
        console.print(f"[red]{envelope_id}: no SEOS messages in the journal for it / няма SEOS съобщения[/red]")
        raise typer.Exit(1)
    out.mkdir(parents=True, exist_ok=True)
    for r in records:
        # Time first, to the microsecond (then the journal's id): the files sort as the exchange happened.
        stem = f"{r.at:%Y%m%dT%H%M%S.%f}Z_{r.id:06d}_{r.direction}_{r.message_type}"
        (out / f"{stem}.xml").write_bytes(r.data)
        if r.tls_certificate:
            (out / f"{stem}.cer").write_bytes(r.tls_certificate)
        console.print(f"{stem}.xml  {len(r.data)} bytes  sha256 {r.sha256}  {r.peer}")
    console.print(f"{len(records)} message(s) written to {out}")


def register(messages: typer.Typer) -> None:
    messages.command("wire")(wire)
