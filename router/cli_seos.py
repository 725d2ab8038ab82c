"""``kurier seos registry sync|show EIK|search TEXT``: the SEOS registry's copy Kurier keeps, for operators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from adapters.seos.registry_cache import RegistryCache
    from adapters.seos.registry_model import Entity

__all__ = ["register"]

seos_app = typer.Typer(help="The national interagency exchange (SEOS).", no_args_is_help=True)
registry_app = typer.Typer(help="The SEOS registry: Kurier's copy of it.", no_args_is_help=True)
seos_app.add_typer(registry_app, name="registry")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="kurier.yaml")]
_STATUS = {0: "inactive / неактивен", 1: "active / активен", 2: "temporarily inactive / временно неактивен"}


def _cache(config: Path | None) -> RegistryCache:
    from adapters.seos.registry import RegistryClient
    from adapters.seos.registry_cache import RegistryCache
    from adapters.seos.registry_snapshot import JsonSnapshotStore
    from router.cli import _load, console

    cfg, _ = _load(config)
    if cfg.seos.registry is None:
        console.print("[red]no SEOS registry configured: add seos: registry: url: https://… to the configuration "
                      "/ няма настроен регистър на СЕОС[/red]")
        raise typer.Exit(2)
    cache = RegistryCache(RegistryClient(cfg.seos.registry), JsonSnapshotStore(cfg.data_dir / "seos"))
    cache.load()
    return cache


def _age(cache: RegistryCache) -> str:
    age = cache.age
    if age is None:
        return "no copy yet / още няма копие"
    return f"copy of {cache.fetched_at:%Y-%m-%d %H:%M:%S} UTC, {int(age.total_seconds()) // 60} min old"


@registry_app.command("sync")
def sync(config: ConfigOption = None) -> None:
    """Bring the copy up to date from the registry (all records the first time, then what changed)."""
    from router.cli import console

    cache = _cache(config)
    result = cache.refresh()
    if not result.ok:
        console.print(f"[red]the registry did not answer / регистърът не отговори: {result.error}[/red]")
        console.print(f"kept: {len(cache.entities)} participant(s), {_age(cache)}")
        raise typer.Exit(1)
    console.print(f"{len(cache.entities)} participant(s), {_age(cache)} ({result.mode} refresh: {result.changed} "
                  "record(s) in the answer)")


def _rows(entities: tuple[Entity, ...], title: str) -> None:
    from router.cli import _table, console

    table = _table(title, "EIK", "GUID", "name", "status", "certificate", "SEOS endpoint", whole=2)
    for e in entities:
        table.add_row(e.eik, e.guid, e.administrative_body_name, _STATUS.get(int(e.status), str(e.status)),
                      e.certificate_sn or "—", e.submit_uri or "—")
    console.print(table)


def _look_up(config: Path | None, how: Callable[[RegistryCache], tuple[Entity, ...]]
             ) -> tuple[RegistryCache, tuple[Entity, ...]]:
    """The copy, and what ``how`` finds in it; a copy not there yet is said, not a traceback."""
    from router.cli import console
    from schemas.errors import KurierError

    cache = _cache(config)
    try:
        return cache, how(cache)
    except KurierError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@registry_app.command("show")
def show(eik: str, config: ConfigOption = None) -> None:
    """The participants registered under an EIK, from the copy (``sync`` first for the newest)."""
    from router.cli import console

    cache, found = _look_up(config, lambda c: c.by_eik(eik))
    if not found:
        console.print(f"[red]no participant with EIK {eik} in the copy ({_age(cache)}) / няма такъв участник[/red]")
        raise typer.Exit(1)
    _rows(found, f"EIK {eik}: {_age(cache)}")


@registry_app.command("search")
def search(text: str, config: ConfigOption = None) -> None:
    """Participants whose name, EIK or GUID contains TEXT, from the copy."""
    cache, found = _look_up(config, lambda c: c.search(text))
    _rows(found, f"{len(found)} participant(s) matching {text!r}: {_age(cache)}")


def register(app: typer.Typer) -> None:
    app.add_typer(seos_app, name="seos")
