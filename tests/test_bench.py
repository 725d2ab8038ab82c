"""``kurier bench``: the rows operators compare, on the embedded defaults and on RabbitMQ + PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.bench import run_direct, run_filedrop
from router.bench.stages import SEGMENTS
from router.cli import app
from tests.helpers import hub_config

runner = CliRunner()


def test_bench_with_the_file_drop_prints_every_row_on_the_embedded_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no configuration at all (the embedded transport and SQLite)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("KURIER_CONFIG", raising=False)
    # When the bench runs with the file-drop path too
    result = runner.invoke(app, ["bench", "--source", "filedrop", "-n", "200", "--half-load-seconds", "1"],
                           env={"COLUMNS": "250"})
    # Then it prints the bare hop (before Kurier and after), Kurier at full and at half load, and the file
    # drop, each with all 200
    assert result.exit_code == 0, result.output
    first_table = result.output.split("└")[0]
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in first_table.splitlines()
            if line.startswith("│")}
    assert [name.split(" (")[0].split(":")[0] for name in rows] == [
        "bare hop", "bare hop", "Kurier at full load", "Kurier at half load", "Kurier file drop"]
    assert [name.rsplit(", ", 1)[-1] for name in list(rows)[:2]] == ["before", "after"]
    assert all(count == "200" for count in rows.values())
    assert "its runs pooled" in result.output  # the yardstick: the bare hop before and after, pooled
    assert "ratio: Kurier / bare hop =" in result.output and "ratio: file drop / bare hop =" in result.output
    assert "half load: p50" in result.output and "documents/s offered" in result.output
    # and where a document's time goes, hop by hop
    assert "where a document's time goes" in result.output and "→ delivered (publish, queue hop" in result.output
    # and leaves nothing behind where it was started
    assert list(tmp_path.iterdir()) == []


def test_the_file_drop_path_delivers_every_document_into_the_outbox(tmp_path: Path, backend: dict[str, str]) -> None:
    # Given the configured transport and journal (on RabbitMQ with a worker process, as in production)
    config = hub_config(tmp_path, backend)
    processes = 1 if backend["broker_url"].startswith("amqp") else 0
    # When 100 documents are dropped into the bench's inbox
    result = run_filedrop(config, 100, processes)
    # Then all 100 are journaled as delivered and their files are in the outbox
    assert result.count == 100 and result.complete and result.rate > 0


def test_half_load_offers_half_the_capacity_and_measures_each_documents_latency(
    tmp_path: Path, backend: dict[str, str]
) -> None:
    full, half = run_direct(hub_config(tmp_path, backend), 150, half_load_seconds=1.0)
    assert full.complete and full.count == 150
    assert half.offered == pytest.approx(full.rate / 2)
    # At most 150 documents, at most a second's worth of the offered rate
    assert half.complete and half.count == max(1, min(150, round(full.rate / 2)))
    assert half.p50_ms is not None and half.p99_ms is not None and 0 < half.p50_ms <= half.p99_ms
    # And the journal's events tell where that time went: each segment in order, none negative
    assert [label for label, _, _ in half.stages] == [label for label, _, _ in SEGMENTS]
    assert all(0 <= p50 <= p99 for _, p50, p99 in half.stages)
