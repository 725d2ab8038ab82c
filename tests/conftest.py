"""Shared fixtures: the embedded defaults everywhere, the real services where reachable.

A test written once runs on the embedded transport + SQLite and on RabbitMQ + PostgreSQL (and the
journal also on MariaDB). On a laptop without those services the real variants are skipped; in CI
(``CI=true``) an unreachable service is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

IN_CI = os.environ.get("CI", "").lower() == "true"
AMQP_URL = os.environ.get("KURIER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
PG_ADMIN_URL = os.environ.get("KURIER_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("KURIER_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message}: CI must run the tests against the real service (.ci/run starts it)")
    pytest.skip(message)


def _scratch_database(admin_url: str, name: str, dialect: str) -> Iterator[str]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}" + (" CHARACTER SET utf8mb4" if dialect == "mysql" else "")))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        if dialect == "postgresql":
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    yield from _scratch_database(PG_ADMIN_URL, f"kurier_test_{os.getpid()}", "postgresql")


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    require_service("MariaDB", "127.0.0.1", 3306)
    yield from _scratch_database(MYSQL_ADMIN_URL, f"kurier_test_{os.getpid()}", "mysql")


@pytest.fixture
def amqp_url() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL


def _fresh(url: str) -> str:
    """Empty the journal's tables so each test starts from nothing (the schema stays)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in ("events", "deliveries", "envelopes", "envelope_data", "status_changes", "journal_seals",
                      "wire_messages"):
            try:
                with conn.begin_nested():
                    conn.execute(text(f"DELETE FROM {table}"))
            except Exception:  # the table does not exist yet: the first test creates it
                pass
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'journal.sqlite3'}"
    if request.param == "postgresql":
        return _fresh(request.getfixturevalue("pg_url"))
    return _fresh(request.getfixturevalue("mysql_url"))


@pytest.fixture(params=["embedded", "rabbitmq+postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Transport and journal for a hub: the embedded defaults, or the production services."""
    prefix = f"kurier-test-{uuid.uuid4().hex[:8]}"
    if request.param == "embedded":
        return {"broker_url": "memory://", "journal_url": f"sqlite:///{tmp_path / 'journal.sqlite3'}",
                "queue_prefix": prefix}
    amqp = request.getfixturevalue("amqp_url")
    return {"broker_url": amqp, "journal_url": _fresh(request.getfixturevalue("pg_url")), "queue_prefix": prefix}


@pytest.fixture
def make_hub(tmp_path: Path, backend: dict[str, str]) -> Iterator[Any]:
    """``make_hub(**settings)``: a started hub on the test's backend (``start=False`` to start it yourself);
    each is stopped, and its queues removed, after the test."""
    from router.hub import Hub
    from tests.helpers import delete_queues, hub_config

    hubs: list[Hub] = []

    def make(start: bool = True, **overrides: Any) -> Hub:
        hub = Hub(hub_config(tmp_path, backend, **overrides))
        if start:
            hub.start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        if hub.started:
            hub.stop()
        delete_queues(hub.config)
