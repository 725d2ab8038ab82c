"""What a bench run measured, and the percentiles of its latencies."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

__all__ = ["BenchResult", "percentiles"]


@dataclass(frozen=True)
class BenchResult:
    """One row of ``kurier bench``: how many items in how many seconds, and their latency (ms)."""

    name: str
    count: int
    seconds: float
    p50_ms: float | None  # None: the run measures throughput only (see its caption)
    p99_ms: float | None
    offered: float | None = None  # documents per second offered, for a paced run
    submitted: int | None = None  # how many went in, when fewer may have come out
    stages: tuple[tuple[str, float, float], ...] = ()  # where the latency goes: (segment, p50 ms, p99 ms)

    @property
    def complete(self) -> bool:
        return self.submitted is None or self.count >= self.submitted

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def percentiles(latencies: list[float]) -> tuple[float, float]:
    """Median and 99th percentile of latencies in seconds, in milliseconds (0 for none)."""
    if not latencies:
        return 0.0, 0.0
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000
