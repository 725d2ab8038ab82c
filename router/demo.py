"""``kurier demo``: two simulated AIS exchange a batch of realistic documents through Kurier.

A municipality (an AIS from 2002 that writes windows-1251) and its regional administration (UTF-8)
drop documents — Cyrillic text, PDFs attached — into their inboxes; some are broken or hostile the way
real inboxes see them. Kurier runs on embedded defaults (SQLite, in-process queues) and delivers each
valid document into the other side's outbox; every bad one is refused with its reason.

Each administration's documents leave signed with its own qualified-style certificate from a test PKI
the demo builds (``<dir>/pki``): PAdES B-T, timestamped by the test PKI's TSA running on 127.0.0.1 for
the demo; ``kurier verify <a delivered PDF> --pki <dir>/pki`` checks one, as pyhanko and pdfsig do.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.filedrop.testing import (
    IMPOSTOR,
    MUNICIPALITY,
    REGION,
    SampleAis,
    SampleDocument,
    sample_pdf,
    write_bad_document,
    write_document,
)
from router.config import KurierConfig, load_config
from signing.pki import PkiFiles, build_pki
from signing.pkiserver import PkiServer

__all__ = ["run_demo"]

_KINDS = [
    ("Молба", "Искане за издаване на удостоверение за наследници"),
    ("Заповед", "Заповед за определяне на комисия по чл. 42 от ЗОС"),
    ("Писмо", "Отговор на писмо относно електронния документооборот"),
    ("Доклад", "Доклад за изпълнението на Решение № 171 на Министерския съвет"),
    ("Становище", "Становище по проект на Наредба за реда за придобиване на общинско имущество"),
    ("Покана", "Покана за работна среща по въвеждане на изцяло електронен вътрешен оборот"),
]
_BAD_FROM_MUNICIPALITY = ["malformed", "external-entity", "billion-laughs", "bad-encoding", "invalid-eik",
                          "path-traversal"]
_BAD_FROM_REGION = ["missing-recipient", "sender-mismatch"]


def _signer(pki: PkiFiles, eik: str, name: str) -> dict[str, object]:
    files = next(s for s in pki.valid_signers() if s.eik == eik)
    key: dict[str, object] = {"type": "pkcs12", "path": str(files.pkcs12)}
    key.update({"password_file": str(files.password_file)} if files.password_file else
               {"password_env": "KURIER_PKI_PASSWORD"})
    return {"kind": "qes", "key": key, "level": "B-T", "tsa_url": pki.tsa_url, "reason": f"Изпратено от {name}",
            "formats": {"*.pdf": "pades"}}


def demo_config(root: Path, pki: PkiFiles | None = None) -> KurierConfig:
    """The demo's configuration, also written to ``<root>/kurier.yaml`` for ``kurier messages -c``.

    With ``pki``, each administration's documents are signed with its signer from it.
    """
    def ais(name: str, ais: SampleAis) -> dict[str, object]:
        return {"adapter": "filedrop", "inbox": f"inbox/{name}", "outbox": f"outbox/{name}", "encoding": ais.encoding,
                "sender_eik": ais.eik, "settle_seconds": 0.3, "poll_interval": 0.2}

    settings = dict(
        data_dir=str(root),
        broker_url="memory://",
        journal_url=f"sqlite:///{root / 'journal.sqlite3'}",
        queue_prefix=f"kurier-demo-{int(time.time() * 1000)}",
        api={"enabled": False},
        processing={"batch_wait_ms": 10, "sweep_interval_seconds": 1.0},
        connections={"municipality": ais("municipality", MUNICIPALITY), "region": ais("region", REGION)},
        routes=[
            {"name": "to-municipality", "match": {"recipient_eik": [MUNICIPALITY.eik]}, "deliver_to": ["municipality"]},
            {"name": "to-region", "match": {"recipient_eik": [REGION.eik]}, "deliver_to": ["region"]},
        ],
    )
    if pki is not None:  # what the municipality sends goes to the region, signed by it, and the other way
        settings["signing"] = {
            "signers": {"municipality": _signer(pki, MUNICIPALITY.eik, MUNICIPALITY.name),
                        "region": _signer(pki, REGION.eik, REGION.name)},
            "routes": {"to-region": "municipality", "to-municipality": "region"},
        }
    path = root / "kurier.yaml"
    path.write_text(yaml.safe_dump(settings, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_config(path)


def _write_batch(config: KurierConfig, count: int) -> tuple[int, int]:
    """Fill both inboxes; return (valid, bad) document counts."""
    inbox = {name: config.resolve_path(f"inbox/{name}") for name in ("municipality", "region")}
    for path in inbox.values():
        path.mkdir(parents=True, exist_ok=True)
    valid = 0
    for i in range(count):
        for name, sender, recipient in (("municipality", MUNICIPALITY, REGION), ("region", REGION, MUNICIPALITY)):
            kind, subject = _KINDS[(i + (name == "region")) % len(_KINDS)]
            files = {f"{kind.lower()}-{i + 1}.pdf": sample_pdf(kind, (subject, f"Изх. № {i + 1}"))}
            if i % 5 == 0:
                files[f"приложение-{i + 1}.pdf"] = sample_pdf("Приложение", ("Опис на документите",))
            write_document(inbox[name], SampleDocument(
                sender=sender, recipient=recipient, kind=kind, subject=subject, attachments=files,
                reg_number=f"{'ОбА' if name == 'municipality' else 'ОА'}-01-{100 + i}/21.11.2026",
                declare_encoding=(i % 3 != 0),  # legacy AIS often write no XML declaration at all
            ))
            valid += 1
    bad = 0
    for problem in _BAD_FROM_MUNICIPALITY:
        write_bad_document(inbox["municipality"], problem, sender=MUNICIPALITY, recipient=REGION)
        bad += 1
    for problem in _BAD_FROM_REGION:
        write_bad_document(inbox["region"], problem, sender=IMPOSTOR if problem == "sender-mismatch" else REGION,
                           recipient=MUNICIPALITY)
        bad += 1
    # A valid document for an administration no route knows: an unknown recipient.
    write_document(inbox["region"], SampleDocument(sender=REGION, recipient=IMPOSTOR, encoding="utf-8",
                                                   subject="Писмо до непозната администрация"))
    return valid, bad + 1


def run_demo(console: Console, directory: Path | None, count: int) -> bool:
    from router.hub import Hub

    root = Path(directory or tempfile.mkdtemp(prefix="kurier-demo-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    pki = build_pki(root / "pki", [MUNICIPALITY.eik, REGION.eik])
    config = demo_config(root, pki)
    console.print(f"[bold]Kurier demo[/bold] in {root}\n"
                  f"Община Примерово (AIS от 2002, windows-1251) ⇄ Областна администрация Примерна (UTF-8)\n"
                  f"signing: PAdES B-T, test PKI in {pki.directory}, its TSA on {pki.service_url}")
    valid, bad = _write_batch(config, count)
    total = valid + bad
    hub = Hub(config)
    started = time.monotonic()
    services = PkiServer(pki).start()
    try:
        hub.start()
    except BaseException:
        services.stop()
        raise
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("документи / documents", total=total)
            done = 0
            while done < total and time.monotonic() - started < 55:
                counts = hub.journal.status_counts()
                done = sum(counts.get(s, 0) for s in ("delivered", "refused", "failed"))
                progress.update(task, completed=done)
                time.sleep(0.2)
        rows = hub.journal.search(limit=total + 10)
    finally:
        hub.stop()
        services.stop()
    elapsed = time.monotonic() - started
    delivered = [r for r in rows if r.status == "delivered"]
    refused = [r for r in rows if r.status != "delivered"]

    table = Table(title="Отказани / Refused", show_lines=False)
    for col in ("от / from", "вид / kind", "причина / reason"):
        table.add_column(col, overflow="fold")
    for r in sorted(refused, key=lambda r: r.source):
        table.add_row(r.source, r.kind or "—", r.error or r.status)
    console.print(table)
    summary = Table(title="Доставени / Delivered")
    for col in ("от / from", "до / to", "документи / documents"):
        summary.add_column(col)
    pairs: dict[tuple[str, str], int] = {}
    for r in delivered:
        key = (r.sender_name or "", r.recipient_name or "")
        pairs[key] = pairs.get(key, 0) + 1
    for (sender, recipient), n in sorted(pairs.items()):
        summary.add_row(sender, recipient, str(n))
    console.print(summary)
    ok = len(delivered) == valid and len(refused) == bad
    colour = "green" if ok else "red"
    console.print(f"[{colour}]{len(delivered)} of {valid} valid documents delivered, {len(refused)} of {bad} bad ones "
                  f"refused with their reason, in {elapsed:.1f} s[/{colour}]\n"
                  f"outboxes: {config.resolve_path('outbox')}   refused files: "
                  f"{config.resolve_path('inbox/municipality/failed')}, {config.resolve_path('inbox/region/failed')}\n"
                  f"journal: kurier messages list -c {root / 'kurier.yaml'}\n"
                  f"signatures: kurier verify <a PDF of {config.resolve_path('outbox/region')}> --pki {pki.directory}")
    return ok
