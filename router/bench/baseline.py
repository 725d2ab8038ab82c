"""The bench's yardstick: one bare broker hop on the same transport, in the same run."""

from __future__ import annotations

import time
import uuid

from kombu import Connection, Consumer, Exchange, Producer, Queue

from router.bench.results import BenchResult, percentiles

__all__ = ["pooled", "run_baseline"]


def pooled(runs: list[BenchResult]) -> BenchResult:
    """The baseline runs as one: all their messages over all their time.

    The bench measures the bare hop before Kurier and again after it: this machine's speed drifts by a
    quarter within minutes (other tenants of the host), and a yardstick read once, at a fast or a slow
    moment, would move the ratio as much as any change to Kurier does.
    """
    count, seconds = sum(r.count for r in runs), sum(r.seconds for r in runs)
    p50 = sorted(r.p50_ms or 0.0 for r in runs)[len(runs) // 2]
    p99 = max(r.p99_ms or 0.0 for r in runs)
    return BenchResult(f"bare hop, the {len(runs)} runs pooled", count, seconds, p50, p99)


def run_baseline(broker_url: str, count: int, when: str = "") -> BenchResult:
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
    p50, p99 = percentiles(latencies)
    return BenchResult(f"bare hop (kombu consume → publish → ack){when}", count, elapsed, p50, p99)
