"""A hub of the bench's own: scratch journal, own queues, worker processes, and what it delivered when.

Every run uses a fresh journal (a new SQLite file, or a scratch schema on PostgreSQL) and queues with
a prefix of its own, and removes both afterwards: runs are comparable (no rows of earlier runs to wade
through) and the bench's documents never reach a real journal or real queues.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, make_url, select, text

from router.config import KurierConfig, load_config
from router.journal.tables import envelopes
from router.runtime import settle_heap
from schemas.envelope import EnvelopeStatus

if TYPE_CHECKING:
    from router.hub import Hub

__all__ = ["bench_hub", "delivered_at", "epoch", "wait_delivered"]

WORKER_ROLES = frozenset({"process", "deliver", "sweep", "seal"})


@contextmanager
def _scratch_journal(url: str | None) -> Iterator[str | None]:
    """A fresh SQLite file (None: in the bench's own directory), or a scratch schema on PostgreSQL."""
    if not url or not url.startswith("postgresql"):
        yield url
        return
    schema = f"kurier_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        scratch = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scratch.render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def _wait_for_consumers(hub: Hub, expected: int, timeout: float = 60.0) -> None:
    """Worker processes take a moment to start: time only once each consumes its queues."""
    deadline = time.monotonic() + timeout
    queues = [hub.topology.inbound, *hub.topology.deliveries.values()]
    with hub.broker.connect() as conn:
        channel = conn.default_channel
        while time.monotonic() < deadline:
            counts = [q.bind(channel).queue_declare(passive=True)[2] for q in queues]
            if min(counts) >= expected:
                return
            time.sleep(0.1)
    raise RuntimeError("the bench's worker processes did not start in time")


@contextmanager
def bench_hub(base: KurierConfig, processes: int, connections: dict[str, dict[str, Any]],
              deliver_to: list[str], *, with_sources: bool = False) -> Iterator[Hub]:
    """A started hub on ``base``'s transport and journal (scratch), its workers ready, its sources not started.

    ``processes`` > 0 (RabbitMQ only) runs the workers in that many processes, as
    ``processing.worker_processes`` does for ``kurier run``; intake and the sweeper stay here. Relative
    paths in ``connections`` are inside the bench's temporary data directory (``hub.config.data_dir``).
    The caller starts the sources (``hub.sources``) when its clock starts.
    """
    from router.hub import Hub
    from router.procs import spawn_hub_processes, stop_workers

    with tempfile.TemporaryDirectory(prefix="kurier-bench-") as tmp, _scratch_journal(base.journal_url) as url:
        config = load_config(
            None,
            data_dir=str(Path(tmp)),
            journal_url=url,  # None → a fresh SQLite journal in the bench's own directory
            broker_url=base.broker_url,
            queue_prefix=f"kurier-bench-{uuid.uuid4().hex[:8]}",
            processing={**base.processing.model_dump(), "worker_processes": 0},
            seal=base.seal.model_dump(),
            api={"enabled": False},
            connections=connections,
            default_route={"deliver_to": deliver_to},
        )
        hub = Hub(config, with_sources=with_sources)
        children: list[BaseProcess] = []
        try:
            if processes:
                hub.start(roles=frozenset({"sweep"}))
                children = spawn_hub_processes(config, processes)
                _wait_for_consumers(hub, processes)
            else:
                hub.start(roles=WORKER_ROLES)
            settle_heap()  # as `kurier run` does once started
            yield hub
        finally:
            stop_workers(children)
            hub.stop()
            if hub.broker.durable:
                hub.broker.delete()


def wait_delivered(hub: Hub, source: str, count: int, timeout: float) -> int:
    """Wait until the journal has ``count`` documents of ``source`` delivered (or ``timeout``); how many it has."""
    started = time.monotonic()
    delivered = 0
    while delivered < count and time.monotonic() - started < timeout:
        # Counting is a query on the journal under test: often enough not to linger after the end (the
        # end time itself comes from the journal's rows), rarely enough not to load the database.
        time.sleep(min(0.5, max(0.02, (time.monotonic() - started) / 20)))
        delivered = hub.journal.count(status=EnvelopeStatus.DELIVERED.value, source=source)
    return delivered


def delivered_at(hub: Hub, source: str) -> dict[str, float]:
    """When (epoch seconds, the journal's own time) each delivered document of ``source`` was journaled so."""
    query = select(envelopes.c.id, envelopes.c.updated_at).where(
        envelopes.c.source == source, envelopes.c.status == EnvelopeStatus.DELIVERED.value)
    with hub.journal.engine.connect() as conn:
        return {row.id: epoch(row.updated_at) for row in conn.execute(query)}


def epoch(value: datetime) -> float:
    # SQLite hands back naive datetimes; the journal only ever stores UTC.
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
