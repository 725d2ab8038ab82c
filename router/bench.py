"""``kurier bench``: the whole pipeline's throughput and latency next to the broker's bare ceiling.

The baseline is one bare hop on the same transport in the same run: plain kombu consume → publish →
ack between two durable queues, persistent 2 KB messages, no publisher confirms, no database, no
other work. Kurier's figure is documents submitted → validated → journaled → queued → transformed →
signed → routed → journaled → queued → delivered → journaled, with confirms and the journal on.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING

from kombu import Connection, Consumer, Exchange, Producer, Queue
from sqlalchemy import create_engine, make_url, text

from router.config import KurierConfig, load_config
from schemas.envelope import AttachmentRef, Envelope, Party
from schemas.identifiers import new_guid

if TYPE_CHECKING:
    from router.hub import Hub

__all__ = ["BenchResult", "run_baseline", "run_pipeline"]


@dataclass(frozen=True)
class BenchResult:
    name: str
    count: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    if not latencies:
        return 0.0, 0.0
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def run_baseline(broker_url: str, count: int) -> BenchResult:
    """One bare hop: consume from A → publish to B → ack, no confirms, 2 KB persistent messages."""
    prefix = f"kurier-bench-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(prefix, type="direct", durable=True)
    qa = Queue(f"{prefix}.a", exchange, routing_key="a", durable=True)
    qb = Queue(f"{prefix}.b", exchange, routing_key="b", durable=True)
    payload = "x" * 2048
    options = {"polling_interval": 0.005} if broker_url.startswith("memory") else {}
    with Connection(broker_url, transport_options=options) as conn:
        channel = conn.channel()
        qa.bind(channel).declare()
        qb.bind(channel).declare()
        producer = Producer(channel, exchange=exchange, serializer="json")
        for _ in range(count):
            producer.publish({"t": 0.0, "p": payload}, routing_key="a", delivery_mode=2)
        latencies: list[float] = []
        inbox: list[tuple[dict[str, object], object]] = []
        moved = 0
        started = time.perf_counter()
        # Messages are taken in the callback and handled after it: publishing from inside a kombu
        # callback re-enters drain_events (py-amqp checks for connection.blocked on each publish).
        with Consumer(conn.channel(), queues=[qa], callbacks=[lambda body, msg: inbox.append((body, msg))],
                      prefetch_count=100, accept=["json"]):
            while moved < count:
                if not inbox:
                    conn.drain_events(timeout=10)
                while inbox:
                    body, message = inbox.pop(0)
                    t0 = time.perf_counter()
                    producer.publish(body, routing_key="b", delivery_mode=2)
                    message.ack()  # type: ignore[attr-defined]
                    latencies.append(time.perf_counter() - t0)
                    moved += 1
        elapsed = time.perf_counter() - started
        for q in (qa, qb):
            q.bind(channel).delete()
        exchange.bind(channel).delete()
    p50, p99 = _percentiles(latencies)
    return BenchResult("bare hop (kombu consume → publish → ack)", count, elapsed, p50, p99)


@contextmanager
def _scratch_journal(url: str | None) -> Iterator[str | None]:
    """The bench's own journal: a fresh SQLite file (None), or a scratch schema on PostgreSQL.

    A fresh schema makes runs comparable (no dead rows of earlier runs to wade through) and keeps the
    bench's documents out of the real journal's tables.
    """
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


def _bench_config(base: KurierConfig, data_dir: Path, journal_url: str | None) -> KurierConfig:
    return load_config(
        None,
        data_dir=str(data_dir),
        journal_url=journal_url,  # None → a fresh SQLite journal in the bench's own directory
        broker_url=base.broker_url,
        queue_prefix=f"kurier-bench-{uuid.uuid4().hex[:8]}",
        processing=base.processing.model_dump(),
        connections={"bench-sink": {"adapter": "memory"}},
        default_route={"deliver_to": ["bench-sink"]},
    )


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


def run_pipeline(base: KurierConfig, count: int, processes: int = 0) -> BenchResult:
    """Push ``count`` documents through a whole hub on the configured transport and journal.

    ``processes`` > 0 (RabbitMQ only) runs the workers in that many processes, as
    ``processing.worker_processes`` does for ``kurier run``; intake and the sweeper stay here.
    A document counts when the journal has it as delivered.
    """
    from router.hub import ALL_ROLES, Hub
    from router.procs import spawn_workers, stop_workers

    source = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="kurier-bench-") as tmp, _scratch_journal(base.journal_url) as url:
        config = _bench_config(base, Path(tmp), url)
        hub = Hub(config, with_sources=False)
        children: list[BaseProcess] = []
        if processes:
            hub.start(roles=frozenset({"sweep"}))
            children = spawn_workers(config, processes)
            _wait_for_consumers(hub, processes)
        else:
            hub.start(roles=ALL_ROLES)
        stored = hub.store.put_bytes(b"%PDF-1.4\n" + b"0" * 2000)
        att = AttachmentRef(file_name="писмо.pdf", mime_type="application/pdf", size=stored.size,
                            sha256=stored.sha256)
        envs = [
            Envelope(document_guid=new_guid(), source=source, sender=Party(eik="000695235", name="Община Видин"),
                     recipient=Party(eik="121759222", name="Областна администрация Видин"), kind="Писмо",
                     subject=f"Тестов документ № {i}", reg_number=f"ОА-01-{i}/21.11.2026", attachments=[att])
            for i in range(count)
        ]
        started = time.perf_counter()
        delivered = 0
        try:
            for i in range(0, count, 100):
                hub.submit_many(envs[i:i + 100])
            deadline = started + max(60.0, count / 50)
            while delivered < count and time.perf_counter() < deadline:
                # Counting is a query on the journal under test: often enough for a precise end time,
                # rarely enough not to load the database the pipeline is using.
                time.sleep(min(0.2, max(0.02, (time.perf_counter() - started) / 100)))
                delivered = hub.journal.count(status="delivered", source=source)
            elapsed = time.perf_counter() - started
            latencies = hub.journal.timings(source)
        finally:
            stop_workers(children)
            hub.stop()
            if hub.broker.durable:
                hub.broker.delete()
    p50, p99 = _percentiles(latencies)
    how = f", {processes} worker processes" if processes else ""
    return BenchResult(f"Kurier pipeline (all stages, journal, confirms{how})", delivered, elapsed, p50, p99)
