"""``kurier bench``: the whole pipeline's throughput and latency next to the broker's bare ceiling.

The baseline is one bare hop on the same transport in the same run, measured before Kurier's runs and
again after them (their pooled rate is the yardstick): plain kombu consume → publish →
ack between two durable queues, persistent 2 KB messages, no publisher confirms, no database, no
other work. Kurier's figures are documents submitted → validated → journaled → queued → transformed →
signed → routed → journaled → queued → delivered → journaled, with confirms and the journal on:

- full load (:mod:`router.bench.direct`): as fast as the intake takes them; its rate is the capacity;
- half load: half that capacity offered at a steady pace; p50/p99 from submitted to delivered;
- file drop (:mod:`router.bench.filedrop`): from files in an inbox to files in an outbox.

Only the CLI imports this package, lazily: it pulls in the hub and the adapters.
"""

from router.bench.baseline import pooled, run_baseline
from router.bench.direct import run_direct
from router.bench.filedrop import run_filedrop
from router.bench.report import report
from router.bench.results import BenchResult

__all__ = ["BenchResult", "pooled", "report", "run_baseline", "run_direct", "run_filedrop"]
