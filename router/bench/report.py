"""What ``kurier bench`` prints: one table of runs, where a document's time goes, and the ratio lines."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from router.bench.baseline import pooled
from router.bench.results import BenchResult

__all__ = ["report"]


def _table(title: str, *columns: str, caption: str) -> Table:
    table = Table(title=title, caption=caption)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _ms(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "—"


def report(console: Console, baselines: list[BenchResult], full: BenchResult, half: BenchResult,
           filedrop: BenchResult | None = None, *, coarse_clock: bool = False) -> list[BenchResult]:
    """Print the runs; return those that delivered fewer documents than went in."""
    base = pooled(baselines)
    results = [*baselines, full, half, *([filedrop] if filedrop else [])]
    caption = ("latency: the baseline's is one hop's own handling time; Kurier's is each document's, from "
               "submitted to journaled as delivered")
    if filedrop:
        caption += "; the file drop's files all wait in its inbox when the clock starts: throughput only"
    runs = _table("kurier bench", "what", "count", "per second", "p50 ms", "p99 ms", caption=caption)
    for r in results:
        runs.add_row(r.name, str(r.count), f"{r.rate:,.0f}", _ms(r.p50_ms), _ms(r.p99_ms))
    console.print(runs)
    if full.stages and half.stages:
        stages = _table("where a document's time goes (ms)", "segment", "full p50", "full p99", "half p50",
                        "half p99", caption="each from the journal's own events; percentiles do not add up")
        for (label, *at_full), (_, *at_half) in zip(full.stages, half.stages, strict=True):
            stages.add_row(label, *(f"{v:.1f}" for v in (*at_full, *at_half)))
        console.print(stages)
    for r, what in ((full, "Kurier"), *([(filedrop, "file drop")] if filedrop else [])):
        console.print(f"ratio: {what} / bare hop = [bold]{r.rate / base.rate if base.rate else 0.0:.2f}[/bold]"
                      f" (bare hop {base.rate:,.0f}/s, its runs pooled)")
    console.print(f"half load: p50 {half.p50_ms or 0:.1f} ms, p99 [bold]{half.p99_ms or 0:.1f} ms[/bold] at "
                  f"{half.offered or 0:,.0f} documents/s offered")
    if coarse_clock:
        console.print("[yellow]the journal's timestamps are whole seconds on MariaDB/MySQL (DATETIME): its "
                      "latencies are good to ±1 s only[/yellow]")
    short = [r for r in results if not r.complete]
    for r in short:
        console.print(f"[red]{r.name}: only {r.count} of {r.submitted} documents were delivered in time[/red]")
    return short
