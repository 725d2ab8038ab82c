"""Operators read a document's status at each recipient: in the ops API and in ``kurier messages show``."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import yaml
from typer.testing import CliRunner

from router.api import create_app
from router.cli import app
from router.config import load_config
from router.journal import DeliveryOutcome, Journal, PlanOutcome
from router.metrics import Metrics
from schemas.envelope import Envelope, EnvelopeStatus
from schemas.status import RecipientStatus, StatusReport
from tests.helpers import envelope

with warnings.catch_warnings():  # as in test_api: Starlette's TestClient warns about httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
    from fastapi.testclient import TestClient

TOKEN = "status-token"


def _registered_at_region(journal: Journal) -> Envelope:
    """A document delivered to region and archive; region registered it, archive has said nothing yet."""
    env = envelope(source="obshtina")
    journal.accept([env])
    journal.record_plans([PlanOutcome(env.id, EnvelopeStatus.ROUTED, [], ["region", "archive"])])
    journal.record_deliveries([DeliveryOutcome(f"{env.id}:{d}", env.id, d, "delivered", "ok")
                               for d in ("region", "archive")])
    journal.record_report("region", StatusReport(document_guid=env.document_guid, status=RecipientStatus.REGISTERED,
                                                 reg_number="РД-12-345", reg_date=date(2025, 12, 16)))
    return env


def test_the_api_shows_the_history_and_where_the_document_stands_at_each_recipient(tmp_path: Path) -> None:
    journal = Journal(f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    journal.upgrade()
    env = _registered_at_region(journal)
    client = TestClient(create_app(journal, Metrics(), TOKEN, lambda: {"journal": "ok"}))

    body = client.get(f"/api/v1/messages/{env.id}", headers={"Authorization": f"Bearer {TOKEN}"}).json()

    assert [(s["destination"], s["status"]) for s in body["statuses"]] == [
        (None, "accepted"), ("region", "queued"), ("archive", "queued"), ("region", "delivered"),
        ("archive", "delivered"), ("region", "registered")]
    assert [(c["destination"], c["status"], c["label"]) for c in body["current"]] == [
        ("archive", "delivered", "Доставен / Delivered"), ("region", "registered", "Регистриран / Registered")]
    registered = body["current"][1]
    assert (registered["reg_number"], registered["reg_date"]) == ("РД-12-345", "2025-12-16")
    assert registered["told_at"] is None  # no hub has told the source yet
    journal.dispose()


def test_messages_show_prints_the_status_history(tmp_path: Path) -> None:
    config_file = tmp_path / "kurier.yaml"
    config_file.write_text(yaml.safe_dump({"data_dir": "data", "api": {"enabled": False}}), encoding="utf-8")
    config = load_config(config_file)
    config.data_dir.mkdir(parents=True)
    journal = Journal(config.resolved_journal_url)
    journal.upgrade()
    env = _registered_at_region(journal)
    journal.dispose()

    result = CliRunner().invoke(app, ["messages", "show", env.id, "-c", str(config_file)], env={"COLUMNS": "200"})

    assert result.exit_code == 0, result.output
    assert "statuses / статуси" in result.output and "Регистриран / Registered" in result.output
    assert "РД-12-345 2025-12-16" in result.output and "not yet" in result.output
    assert "now at region: Регистриран / Registered № РД-12-345 / 16.12.2025" in result.output
    assert "now at archive: Доставен / Delivered" in result.output
