"""The whole path through the file drop: files in an inbox → files in an outbox, the journal saying delivered.

``count`` documents (a metadata XML and a small PDF each, written as an AIS would by
:func:`adapters.filedrop.testing.write_document`) are all in the inbox before the clock starts; the
clock starts when the inbox's source starts and stops at the journal's timestamp of the last
delivery. So the figure includes the inbox's scanning, claiming, parsing and storing, the intake, the
pipeline, and the outbox's writing (fsync off, as on a throw-away disk), not the writing of the inbox.
"""

from __future__ import annotations

import time

from adapters.filedrop.testing import SampleDocument, sample_pdf, write_document
from router.bench.results import BenchResult
from router.bench.session import bench_hub, delivered_at, wait_delivered
from router.config import KurierConfig

__all__ = ["run_filedrop"]

INBOX, OUTBOX = "bench-inbox", "bench-outbox"


def run_filedrop(base: KurierConfig, count: int, processes: int = 0) -> BenchResult:
    connections = {
        INBOX: {"adapter": "filedrop", "inbox": "inbox", "settle_seconds": 0, "poll_interval": 0.05},
        OUTBOX: {"adapter": "filedrop", "outbox": "outbox", "fsync": False},
    }
    how = f", {processes} worker processes" if processes else ""
    with bench_hub(base, processes, connections, [OUTBOX], with_sources=True) as hub:
        inbox, outbox = hub.config.resolve_path("inbox"), hub.config.resolve_path("outbox")
        pdf = sample_pdf("Писмо", ("Тестов документ за kurier bench.",))
        for i in range(count):
            document = SampleDocument(subject=f"Тестов документ № {i}", reg_number=f"ОА-01-{i}/21.11.2026",
                                      attachments={f"писмо-{i:06d}.pdf": pdf})
            write_document(inbox, document, stem=f"bench-{i:06d}")
        started = time.time()  # wall clock: the journal's timestamps are compared with it
        for source in hub.sources.values():
            source.start(hub)
        wait_delivered(hub, INBOX, count, timeout=max(120.0, count / 20))
        done = delivered_at(hub, INBOX)
        written = sum(1 for _ in outbox.glob("*.xml"))
    ended = max(done.values(), default=time.time())
    # Both must agree: the journal saying delivered, and the document's files in the outbox.
    return BenchResult(f"Kurier file drop: inbox files → outbox files{how}", min(len(done), written),
                       ended - started, None, None, submitted=count)
