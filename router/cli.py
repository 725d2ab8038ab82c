"""The ``kurier`` command."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from router.cli_journal import journal_app
from router.cli_seos import register as register_seos
from router.cli_signing import register as register_signing
from router.cli_wire import register as register_wire
from router.config import KurierConfig, load_config
from schemas.errors import ConfigError, KurierError, redact_secrets

if TYPE_CHECKING:
    from router.journal import Journal

app = typer.Typer(help="Kurier: the document hub between AIS, SEOS and the signing service.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
messages_app = typer.Typer(help="Search the journal.", no_args_is_help=True)
db_app = typer.Typer(help="The journal's database schema.", no_args_is_help=True)
app.add_typer(messages_app, name="messages")
app.add_typer(db_app, name="db")
register_signing(app)  # kurier pki init, kurier sign, kurier verify
register_wire(messages_app)  # kurier messages wire
register_seos(app)  # kurier seos registry sync|show|search
app.add_typer(journal_app, name="journal")
console = Console()

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file "
                                                   "(default: $KURIER_CONFIG, else ./kurier.yaml if present)")]

SAMPLE_CONFIG = """\
# Kurier sample configuration: written by `kurier run` when started without one.
# Copy it beside kurier-data as ./kurier.yaml, edit, and run `kurier check-config`.
data_dir: kurier-data
connections:               # one per outside system: a source, a destination, or both
  municipality:            # an AIS that drops documents as files
    adapter: filedrop
    inbox: inbox/municipality
    encoding: windows-1251 # for files without an XML declaration (legacy AIS)
  region:
    adapter: filedrop
    outbox: outbox/region
routes: []                 # e.g. {name: to-region, match: {recipient_eik: ["000695235"]}, deliver_to: [region]}
default_route:
  deliver_to: [region]
"""


def _sample(data_dir: Path) -> dict[str, Any]:
    return {
        "data_dir": str(data_dir),
        "connections": {
            "municipality": {"adapter": "filedrop", "inbox": "inbox/municipality", "encoding": "windows-1251"},
            "region": {"adapter": "filedrop", "outbox": "outbox/region"},
        },
        "default_route": {"deliver_to": ["region"]},
    }


def _load(path: Path | None, *, sample_if_missing: bool = False) -> tuple[KurierConfig, bool]:
    """The configuration, and whether it is the built-in sample."""
    if path is None and os.environ.get("KURIER_CONFIG"):
        path = Path(os.environ["KURIER_CONFIG"])
    if path is None and Path("kurier.yaml").is_file():
        path = Path("kurier.yaml")
    try:
        if path is not None:
            return load_config(path), False
        if sample_if_missing:
            return load_config(None, **_sample(Path(os.environ.get("KURIER_DATA_DIR", "kurier-data")).resolve())), True
        return load_config(None), False
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("amqp", "kombu", "alembic", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _journal(config: Path | None, *, create: bool = False) -> Iterator[Journal]:
    """The configured journal for one command, closed afterwards."""
    from router.journal import Journal

    cfg, _ = _load(config)
    if create:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(cfg.resolved_journal_url)
    try:
        yield journal
    finally:
        journal.dispose()


def _table(title: str, *columns: str, caption: str | None = None, whole: int = 0) -> Table:
    """A table whose first ``whole`` columns never wrap (ids an operator copies), the others fold."""
    table = Table(title=title, caption=caption)
    for i, column in enumerate(columns):
        table.add_column(column, overflow="fold", no_wrap=i < whole)
    return table


def api_token(config: KurierConfig) -> str:
    """The ops API's bearer token: from the configuration, else kept in <data_dir>/api-token (mode 0600)."""
    if config.api.token is not None:
        return config.api.token.get_secret_value()
    path = config.data_dir / "api-token"
    if path.is_file():
        return path.read_text(encoding="ascii").strip()
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    return token


_START_HINTS = {
    "broker-unavailable": "check that the broker runs and that broker_url (or KURIER_BROKER_URL) is right",
    "journal-unavailable": "check that the database at {journal} runs and that journal_url (or KURIER_JOURNAL_URL) "
                           "is right",
}


def _cannot_start(exc: BaseException, cfg: KurierConfig) -> typer.Exit:
    """One line on stderr (what, where, what to do; no traceback, no password), and exit code 2."""
    hint = _START_HINTS.get(getattr(exc, "code", ""), "")
    hint = hint.format(journal=redact_secrets(cfg.resolved_journal_url, limit=None))
    text = redact_secrets(" ".join(str(exc).split()), limit=None) + (f"; {hint}" if hint else "")
    typer.secho(f"Kurier could not start / Куриер не може да стартира: {text}", err=True, fg="red")
    return typer.Exit(2)


@app.command()
def run(config: ConfigOption = None, verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run the hub: sources, pipeline, deliveries, recovery and the ops API, in one process."""
    _logging(verbose)
    cfg, is_sample = _load(config, sample_if_missing=True)
    from router.hub import Hub
    from router.server import ApiServer

    hub: Hub | None = None
    server = None
    try:
        hub = Hub(cfg)
        if cfg.api.enabled:
            server = ApiServer(hub, api_token(cfg))
            server.bind()  # before anything starts: a second `kurier run` on the same port stops here
        hub.start()
        if server:
            server.start()
        from router.runtime import settle_heap

        settle_heap()
    except (KurierError, OSError) as exc:
        for part in (server, hub):
            if part is not None:
                with contextlib.suppress(Exception):  # undo what did start; the error to tell is exc
                    part.stop()
        raise _cannot_start(exc, cfg) from None
    if is_sample:
        (cfg.data_dir / "kurier.example.yaml").write_text(SAMPLE_CONFIG, encoding="utf-8")
        examples = _write_example(cfg.data_dir / "examples")
        console.print(f"Kurier runs on embedded defaults in [bold]{cfg.data_dir}[/bold]:\n"
                      f"  drop documents into  {cfg.resolve_path('inbox/municipality')}\n"
                      f"  (to try it, copy the files of {examples} there)\n"
                      f"  delivered ones in    {cfg.resolve_path('outbox/region')}\n"
                      f"  journal              {cfg.resolved_journal_url}\n"
                      f"  sample configuration {cfg.data_dir / 'kurier.example.yaml'}")
    if server:
        console.print(f"Ops API on http://{cfg.api.host}:{cfg.api.port} "
                      f"(token in {'the configuration' if cfg.api.token else cfg.data_dir / 'api-token'})")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print("Running. Ctrl+C stops.")
    stop.wait()
    console.print("Stopping…")
    if server:
        server.stop()
    hub.stop()


def _write_example(folder: Path) -> Path:
    """A sample document (XML in windows-1251 with a PDF), to copy into the inbox and watch it travel."""
    from adapters.filedrop.testing import SampleDocument, write_document

    if not any(folder.glob("*.xml")):
        folder.mkdir(parents=True, exist_ok=True)
        write_document(folder, SampleDocument(), stem="example-molba")
    return folder


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration (connections, routes, transforms) and say what it sets up.

    It only reads: no folder, database or queue is created, so it can check a configuration on a
    machine it will only be deployed from.
    """
    cfg, _ = _load(config)
    from sqlalchemy import make_url

    from router.routing import RoutingTable
    from router.transform import compile_transforms
    from router.wiring import plan_connections

    try:
        plans = plan_connections(cfg)
        compile_transforms(cfg.transforms, cfg.resolve_path)
        _check_trust(cfg)
    except KurierError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    routing = RoutingTable(cfg.routes, cfg.default_route)
    unused = sorted(name for name, plan in plans.items() if plan.is_destination and name not in routing.destinations)
    table = _table(f"Kurier configuration {cfg.config_file or '(defaults)'}", "what", "details")
    table.add_row("journal", make_url(cfg.resolved_journal_url).render_as_string(hide_password=True))
    durable = not cfg.broker_url.startswith("memory")
    table.add_row("broker", redact_secrets(cfg.broker_url, limit=None) if durable else "embedded (in-process)")
    for name, conn in cfg.connections.items():
        roles = " + ".join(sorted(r for r in ("source", "destination") if r in plans[name].roles))
        table.add_row(f"connection {name}", f"{conn.adapter} ({roles}) {conn.options}")
    for route in cfg.routes:
        table.add_row(f"route {route.name}", f"{route.match.model_dump(exclude_defaults=True)} → {route.deliver_to}")
    table.add_row("default route", str(cfg.default_route.deliver_to) if cfg.default_route else
                  "none: documents no route matches are refused as unknown recipients")
    _signing_rows(table, cfg)
    console.print(table)
    if unused:
        console.print(f"[yellow]note: no route delivers to {', '.join(unused)}[/yellow]")
    console.print("[green]configuration OK[/green]")


def _check_trust(cfg: KurierConfig) -> None:
    from signing.certs import read_certificates

    for path in cfg.signing.verify.trust:
        try:
            read_certificates(cfg.resolve_path(path))
        except ConfigError as exc:
            raise ConfigError(f"signing.verify.trust: {exc}") from exc


def _signing_rows(table: Table, cfg: KurierConfig) -> None:
    """What signs which route's documents and how incoming signatures are checked (no key is opened)."""
    signing = cfg.signing
    route_names = [r.name for r in cfg.routes] + (["default"] if cfg.default_route else [])
    for name in route_names:
        signer = signing.routes.get(name, signing.default)
        kind = signing.signers[signer].kind if signer in signing.signers else signer
        options = signing.signers[signer].options if signer in signing.signers else {}
        key = options.get("key", {})
        what = f"{signer} ({kind}" + (f", key {key.get('type')}" if key else "") + \
            (f", PAdES {options.get('level', 'B-B')}" if kind == "qes" else "") + ")"
        policy = signing.verify.policy(name)
        table.add_row(f"signing {name}", f"signed by {what}; incoming signatures: {policy}")
    if signing.verify.trust:
        table.add_row("trust anchors", ", ".join(str(cfg.resolve_path(p)) for p in signing.verify.trust))


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or migrate the journal's tables to the newest schema."""
    with _journal(config, create=True) as journal:
        journal.upgrade()
        console.print(f"journal schema up to date: {journal.engine.url.render_as_string(hide_password=True)}")


@messages_app.command("list")
def messages_list(
    config: ConfigOption = None,
    query: Annotated[str | None, typer.Argument(help="free text: GUID, registration number, subject, EIK")] = None,
    guid: Annotated[str | None, typer.Option(help="document GUID, with or without braces")] = None,
    reg_number: Annotated[str | None, typer.Option("--reg-number", help="the AIS's registration number")] = None,
    eik: Annotated[str | None, typer.Option(help="sender or recipient EIK")] = None,
    status: Annotated[str | None, typer.Option(help="received, routed, delivered, refused, failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="a JSON array of the messages, for scripts")] = False,
) -> None:
    """Search the journal, newest first."""
    with _journal(config) as journal:
        rows = journal.search(text=query, guid=guid, reg_number=reg_number, eik=eik, status=status, limit=limit)
    if as_json:
        import dataclasses
        import json

        print(json.dumps([dataclasses.asdict(r) for r in rows], ensure_ascii=False, indent=1,
                         default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))
        return
    table = _table(f"{len(rows)} message(s)", "id", "received", "status", "from → to", "reg. number",
                   "kind: subject / error", whole=2)
    for r in rows:
        table.add_row(r.id, f"{r.created_at:%m-%d %H:%M}", r.status,
                      f"{r.sender_eik or '?'} → {r.recipient_eik or '?'}", r.reg_number or "",
                      r.error if r.error else f"{r.kind or ''}: {r.subject or ''}")
    console.print(table)


@messages_app.command("show")
def messages_show(envelope_id: str, config: ConfigOption = None) -> None:
    """One message: its envelope, its event timeline, its deliveries and its status at each recipient."""
    with _journal(config) as journal:
        detail = journal.get(envelope_id)
        if detail is None:  # a GUID or registration number instead of the id: fine if it names one message
            hits = journal.search(text=envelope_id, limit=2)
            detail = journal.get(hits[0].id) if len(hits) == 1 else None
    if detail is None:
        console.print(f"[red]no message {envelope_id!r} in the journal / няма такова съобщение[/red]")
        raise typer.Exit(1)
    s = detail.summary
    console.print(f"[bold]{s.id}[/bold]  {s.status}  GUID {s.document_guid}\n"
                  f"from {s.sender_name} ({s.sender_eik}) to {s.recipient_name} ({s.recipient_eik})\n"
                  f"{s.kind}: {s.subject}  reg. {s.reg_number or '-'}")
    if s.error:
        console.print(f"[red]error: {s.error}[/red]")
    events = _table("events", "at", "stage", "outcome", "destination", "actor", "detail")
    for e in detail.events:
        events.add_row(f"{e.at:%H:%M:%S.%f}"[:-3], e.stage, e.outcome, e.destination or "", e.actor, e.detail or "")
    console.print(events)
    if detail.deliveries:
        dels = _table("deliveries", "destination", "status", "attempts", "next try", "last error")
        for d in detail.deliveries:
            dels.add_row(d.destination, d.status, str(d.attempts), f"{d.next_try:%H:%M:%S}" if d.next_try else "",
                         d.last_error or "")
        console.print(dels)
    if detail.statuses:
        history = _table("statuses / статуси", "seq", "at", "recipient", "status", "reg. number", "reason", "told")
        for r in detail.statuses:
            number = " ".join(x for x in (r.reg_number, r.reg_date.isoformat() if r.reg_date else None) if x)
            told = (f"{r.told_at:%H:%M:%S}" if r.told else f"no: {r.tell_error}") if r.told_at else "not yet"
            history.add_row(str(r.seq), f"{r.at:%Y-%m-%d %H:%M:%S}", r.destination or "—", r.label, number,
                            r.reason or "", told)
        console.print(history)
        for r in detail.current:
            number = f" № {r.reg_number}" + (f" / {r.reg_date:%d.%m.%Y}" if r.reg_date else "") if r.reg_number else ""
            console.print(f"now at {r.destination or '—'}: [bold]{r.label}[/bold]{number}")


@messages_app.command("retry")
def messages_retry(envelope_id: str, config: ConfigOption = None) -> None:
    """Try a failed message again (after the destination or the configuration was fixed)."""
    who = f"operator {os.environ.get('USER') or os.environ.get('LOGNAME') or 'unknown'}"
    with _journal(config) as journal:
        reopened = journal.retry(envelope_id, who=who)
    if not reopened:
        console.print(f"[red]{envelope_id}: not a failed message; nothing to retry / няма какво да се повтори[/red]")
        raise typer.Exit(1)
    console.print(f"{envelope_id}: {reopened} step(s) re-opened; the running hub retries them at its next sweep")


class BenchSource(StrEnum):
    hub = "hub"  # documents handed to the hub's intake
    filedrop = "filedrop"  # and also the whole path from files in an inbox to files in an outbox


@app.command()
def bench(
    config: ConfigOption = None,
    count: Annotated[int, typer.Option("--count", "-n", min=100, help="documents to push through")] = 5000,
    broker_url: Annotated[str | None, typer.Option(help="override the configured broker")] = None,
    journal_url: Annotated[str | None, typer.Option(help="override the configured journal")] = None,
    processes: Annotated[int | None, typer.Option(help="worker processes (RabbitMQ only; default: "
                                                  "processing.worker_processes)")] = None,
    source: Annotated[BenchSource, typer.Option(help="filedrop: also measure files in an inbox → files in "
                                                "an outbox")] = BenchSource.hub,
    half_load_seconds: Annotated[float, typer.Option(min=1.0, help="how long to offer half the capacity "
                                                     "(at most --count documents)")] = 10.0,
    sign: Annotated[bool, typer.Option("--sign", help="instead: PAdES signing rate next to pyhanko's plain "
                                       "sign_pdf, over all cores, and peak RSS on a big PDF")] = False,
    sign_seconds: Annotated[float, typer.Option(min=0.1, help="--sign: seconds per rate")] = 5.0,
    sign_big_mb: Annotated[int, typer.Option(min=1, help="--sign: size of the big PDF, MB")] = 100,
) -> None:
    """Throughput and latency of the whole pipeline, as a ratio to one bare broker hop."""
    if sign:
        from router.bench.signing import report_sign, run_sign_bench

        with console.status("signing: plain pyhanko, Kurier, all cores, a big PDF…"):
            result = run_sign_bench(sign_seconds, sign_big_mb, processes)
        report_sign(console, result)
        return
    cfg, _ = _load(config)
    if broker_url or journal_url:
        cfg = cfg.model_copy(update={k: v for k, v in (("broker_url", broker_url), ("journal_url", journal_url)) if v})
    if processes and not cfg.broker_url.startswith("amqp"):
        console.print("[red]--processes needs RabbitMQ (--broker-url amqp://…): the embedded transport lives in "
                      "one process[/red]")
        raise typer.Exit(2)
    from router.bench import report, run_baseline, run_direct, run_filedrop

    logging.basicConfig(level=logging.WARNING)
    workers = cfg.processing.worker_processes if processes is None else processes
    journal = redact_secrets(cfg.journal_url, limit=None) if cfg.journal_url else "SQLite (embedded)"
    console.print(f"transport {redact_secrets(cfg.broker_url, limit=None)}, journal {journal}, {count} documents")
    with console.status("baseline: one bare hop…"):
        before = run_baseline(cfg.broker_url, count, ", before")
    with console.status("Kurier: the whole pipeline at full load, then at half load…"):
        full, half = run_direct(cfg, count, workers, half_load_seconds)
    filedrop = None
    if source == BenchSource.filedrop:
        with console.status("Kurier: files in an inbox → files in an outbox…"):
            filedrop = run_filedrop(cfg, count, workers)
    with console.status("baseline again: one bare hop…"):
        after = run_baseline(cfg.broker_url, count, ", after")
    coarse = (cfg.journal_url or "").startswith(("mysql", "mariadb"))
    if report(console, [before, after], full, half, filedrop, coarse_clock=coarse):
        raise typer.Exit(1)


@app.command()
def demo(
    directory: Annotated[Path | None, typer.Option("--dir", help="where to run (default: a temporary folder)")] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=4, max=2000, help="valid documents per AIS")] = 20,
) -> None:
    """Two simulated AIS exchange a batch of realistic documents through Kurier (embedded defaults)."""
    from router.demo import run_demo

    logging.basicConfig(level=logging.ERROR)
    ok = run_demo(console, directory, count)
    raise typer.Exit(0 if ok else 1)


def main() -> None:
    try:
        app()
    except ConfigError as exc:  # pragma: no cover - commands catch their own; a last word for the rest
        console.print(f"[red]{exc}[/red]")
        sys.exit(2)


if __name__ == "__main__":
    main()
