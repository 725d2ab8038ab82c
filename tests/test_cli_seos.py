"""``kurier seos registry sync|show|search``: an operator's view of the SEOS registry copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from adapters.seos.registry_model import DOCUMENT_FLOW_SERVICE, Entity, EntityStatus, Service
from adapters.seos.registry_server import LocalRegistry
from router.cli import app

runner = CliRunner()

VIDIN = Entity(entity_identifier="000695235", guid="{6a1f2c3d-1111-4938-8b2b-12a78c86988f}",
               administrative_body_name="Община Видин", certificate_sn="4F1A",
               services=(Service(DOCUMENT_FLOW_SERVICE, "Документооборот", "https://seos.vidin.bg/Submit"),))
REGION = Entity(entity_identifier="121759222", guid="{6a1f2c3d-2222-4938-8b2b-12a78c86988f}",
                administrative_body_name="Областна администрация Видин", status=EntityStatus.TEMPORARILY_INACTIVE)


@pytest.fixture
def registry() -> Iterator[LocalRegistry]:
    with LocalRegistry([VIDIN, REGION]) as server:
        yield server


def _config(tmp_path: Path, url: str | None) -> str:
    data = {"data_dir": str(tmp_path / "data")}
    if url:
        data["seos"] = {"registry": {"url": url, "timeout": 5}}  # type: ignore[assignment]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "kurier.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def test_sync_then_show_and_search_from_the_copy_even_with_the_registry_down(
        tmp_path: Path, registry: LocalRegistry) -> None:
    config = _config(tmp_path, registry.url)
    # When an operator syncs the copy
    result = runner.invoke(app, ["seos", "registry", "sync", "-c", config])
    assert result.exit_code == 0, result.output
    assert "2 participant(s)" in result.output and "full refresh" in result.output
    # and the registry then goes down
    registry.mode = "503"
    # Then show and search still answer from the copy kept in the data folder
    shown = runner.invoke(app, ["seos", "registry", "show", "000695235", "-c", config], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "Община Видин" in shown.output and "https://seos.vidin.bg/Submit" in shown.output
    assert "4F1A" in shown.output
    found = runner.invoke(app, ["seos", "registry", "search", "Видин", "-c", config], env={"COLUMNS": "200"})
    assert found.exit_code == 0 and "2 participant(s)" in found.output and "временно неактивен" in found.output
    # and a sync says the registry did not answer, keeping the copy
    again = runner.invoke(app, ["seos", "registry", "sync", "-c", config])
    assert again.exit_code == 1 and "did not answer" in again.output and "kept: 2 participant(s)" in again.output


def test_an_unknown_eik_and_a_missing_registry_are_said_plainly(tmp_path: Path, registry: LocalRegistry) -> None:
    config = _config(tmp_path, registry.url)
    assert runner.invoke(app, ["seos", "registry", "sync", "-c", config]).exit_code == 0
    unknown = runner.invoke(app, ["seos", "registry", "show", "831902088", "-c", config])
    assert unknown.exit_code == 1 and "no participant with EIK 831902088" in unknown.output
    none = runner.invoke(app, ["seos", "registry", "sync", "-c", _config(tmp_path / "other", None)])
    assert none.exit_code == 2 and "no SEOS registry configured" in none.output
