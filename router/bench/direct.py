"""Documents handed straight to the hub's intake: capacity at full load, latency at half of it.

The full-load run submits every document as fast as the intake takes them (100 per call) and gives
the capacity C. The half-load run then offers C/2 documents per second, paced: every 10 ms (a source
polling) the documents due by then are submitted, so the offered load is steady whatever the
pipeline does. A document's latency is from the moment it was submitted to the moment the journal
recorded it as delivered (the journal's own timestamp, on the same machine's clock).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from adapters.memory import sink
from router.bench.results import BenchResult, percentiles
from router.bench.session import bench_hub, delivered_at, wait_delivered
from router.bench.stages import segments
from router.config import KurierConfig
from router.hub import Hub
from schemas.envelope import AttachmentRef, Envelope, Party
from schemas.identifiers import new_guid

__all__ = ["run_direct"]

PER_CALL = 100  # documents per submit_many at full load
TICK = 0.01  # seconds between submissions at a paced load
SENDER = Party(eik="000695235", name="Община Видин")
RECIPIENT = Party(eik="121759222", name="Областна администрация Видин")


def run_direct(base: KurierConfig, count: int, processes: int = 0,
               half_load_seconds: float = 10.0) -> tuple[BenchResult, BenchResult]:
    """Full load with ``count`` documents, then half of its rate for ``half_load_seconds`` (at most ``count``)."""
    name = f"bench-sink-{uuid.uuid4().hex[:8]}"
    how = f", {processes} worker processes" if processes else ""
    try:
        with bench_hub(base, processes, {name: {"adapter": "memory", "keep": False}}, [name]) as hub:
            stored = hub.store.put_bytes(b"%PDF-1.4\n" + b"0" * 2000)
            att = AttachmentRef(file_name="писмо.pdf", mime_type="application/pdf", size=stored.size,
                                sha256=stored.sha256)
            # Not timed: warms the workers' connections and prepared statements, and gives the scratch
            # journal the statistics any journal in service has (see Journal.analyze).
            _run(hub, _documents(min(count, 2000), att), rate=None, name="warm-up")
            hub.journal.analyze()
            full = _run(hub, _documents(count, att), rate=None,
                        name=f"Kurier at full load (all stages, journal, confirms{how})")
            rate = full.rate / 2
            paced = max(1, min(count, round(rate * half_load_seconds)))
            half = _run(hub, _documents(paced, att), rate=rate,
                        name=f"Kurier at half load ({rate:,.0f} documents/s offered{how})")
    finally:
        sink(name).forgotten.clear()  # the in-memory destination keeps the keys it got: let them go
    return full, half


def _documents(count: int, att: AttachmentRef) -> list[Envelope]:
    source = f"bench-{uuid.uuid4().hex[:8]}"  # one source per run: the journal counts each run apart
    return [
        Envelope(document_guid=new_guid(), source=source, sender=SENDER, recipient=RECIPIENT, kind="Писмо",
                 subject=f"Тестов документ № {i}", reg_number=f"ОА-01-{i}/21.11.2026", attachments=[att])
        for i in range(count)
    ]


def _run(hub: Hub, envs: Sequence[Envelope], rate: float | None, name: str) -> BenchResult:
    """Submit ``envs`` (as fast as possible, or ``rate`` per second) and wait until all are delivered."""
    submitted: dict[str, float] = {}
    started = time.time()  # wall clock: the journal's timestamps are compared with it
    sent, last = 0, float("-inf")
    while sent < len(envs):
        now = time.time()
        if rate is None:
            due = sent + PER_CALL
        else:
            # Document i is due at started + i / rate; what is due goes in together, a tick after the last
            # submission began (or at once, when that submission took longer than a tick).
            wake = max(last + TICK, started + sent / rate)
            if now < wake:
                time.sleep(wake - now)
                continue
            due = int((now - started) * rate) + 1
        chunk = envs[sent:min(due, sent + PER_CALL, len(envs))]
        hub.submit_many(chunk)
        submitted.update((env.id, now) for env in chunk)
        sent, last = sent + len(chunk), now
    wait_delivered(hub, envs[0].source, len(envs), timeout=max(60.0, len(envs) / 50))
    done = delivered_at(hub, envs[0].source)
    latencies = [at - submitted[eid] for eid, at in done.items() if eid in submitted]
    p50, p99 = percentiles(latencies)
    ended = max(done.values(), default=time.time())
    return BenchResult(name, len(done), ended - started, p50, p99, offered=rate, submitted=len(envs),
                       stages=tuple(segments(hub, envs[0].source, submitted)))
