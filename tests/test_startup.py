"""Start-up: a hub that cannot start says so in one line and exits 2; hubs starting together all start."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.filedrop.testing import write_document
from router.journal import Journal
from router.journal.migrate import current
from tests.conftest import MYSQL_ADMIN_URL, PG_ADMIN_URL, _scratch_database, require_service
from tests.helpers import envelope, hub_config
from tests.proxy import free_port

SECRET = "s3cret-pw"


def _run(tmp_path: Path, **settings: Any) -> tuple[int, list[str]]:
    """`kurier run -c <settings>` to its end; its exit code and every non-empty line it wrote."""
    config = tmp_path / "kurier.yaml"
    config.write_text(yaml.safe_dump({"data_dir": "data", "api": {"enabled": False}, **settings}), encoding="utf-8")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "80"}  # a narrow terminal must not wrap the line
    result = subprocess.run([sys.executable, "-m", "router.cli", "run", "-c", str(config)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def test_run_with_an_unreachable_broker_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    port = free_port()
    code, lines = _run(tmp_path, broker_url=f"amqp://kurier:{SECRET}@127.0.0.1:{port}//")
    assert code == 2
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("Kurier could not start / Куриер не може да стартира: the message broker at ")
    assert f"amqp://***@127.0.0.1:{port}//" in line and "Connection refused" in line  # what and where
    assert "broker_url" in line  # what to do
    assert SECRET not in line


def test_run_with_an_unreachable_journal_says_so_in_one_line_and_exits_2(tmp_path: Path) -> None:
    port = free_port()
    code, lines = _run(tmp_path, journal_url=f"postgresql+psycopg://kurier:{SECRET}@127.0.0.1:{port}/kurier")
    assert code == 2
    assert len(lines) == 1, lines
    assert "the journal database is unavailable" in lines[0] and f"127.0.0.1:{port}" in lines[0]
    assert "journal_url" in lines[0] and SECRET not in lines[0] and "Traceback" not in lines[0]


def test_run_whose_api_port_is_taken_refuses_to_start_before_taking_any_document(tmp_path: Path) -> None:
    # Given another program listening on the API's port, and a document waiting in the inbox
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        inbox = tmp_path / "data" / "inbox"
        doc = write_document(inbox)

        # When kurier run starts with that port
        code, lines = _run(tmp_path, api={"enabled": True, "port": port},
                           connections={"ais": {"adapter": "filedrop", "inbox": "inbox", "settle_seconds": 0}})

    # Then it refuses to start with one clear line, and the document was left for the hub that runs
    assert code == 2
    assert len(lines) == 1, lines
    assert f"the ops API cannot listen on 127.0.0.1:{port}: Address already in use" in lines[0]
    assert "api.port" in lines[0]
    assert doc.xml.exists()


# -- two hubs migrating an empty journal at once --------------------------------------------------------

@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def empty_journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.sqlite3'}"
        return
    admin, port = (PG_ADMIN_URL, 5432) if request.param == "postgresql" else (MYSQL_ADMIN_URL, 3306)
    require_service(request.param, "127.0.0.1", port)
    scratch = contextlib.contextmanager(_scratch_database)
    dialect = "postgresql" if request.param == "postgresql" else "mysql"
    with scratch(admin, f"kurier_race_{os.getpid()}_{uuid.uuid4().hex[:6]}", dialect) as url:
        yield url


def _start_hub(data_dir: str, journal_url: str, gate: Any, results: Any) -> None:
    from router.hub import Hub

    hub = Hub(hub_config(Path(data_dir), {"broker_url": "memory://", "journal_url": journal_url,
                                          "queue_prefix": "kurier-race"}), with_sources=False)
    gate.wait(timeout=60)  # both processes are ready: now they migrate at the same moment
    try:
        hub.start()
        results.put("started")
    except BaseException as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        hub.stop()


def test_two_hubs_starting_together_on_an_empty_journal_both_start(tmp_path: Path, empty_journal: str) -> None:
    # Given two hub processes ready to start on the same empty database
    ctx = multiprocessing.get_context("spawn")
    gate, results = ctx.Barrier(2), ctx.Queue()
    processes = [ctx.Process(target=_start_hub, args=(str(tmp_path / f"hub{i}"), empty_journal, gate, results))
                 for i in range(2)]

    # When they start at the same moment
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    # Then both started (one migrated, the other waited and found the schema current), and the journal works
    assert outcomes == ["started", "started"], outcomes
    journal = Journal(empty_journal)
    try:
        assert current(journal.engine) is not None
        journal.accept([envelope()])
        assert journal.count() == 1
    finally:
        journal.dispose()
