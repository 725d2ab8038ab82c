"""Prometheus metrics of one hub: what came in, what was refused, routed and delivered, and how fast.

Every ``Metrics`` owns its own ``CollectorRegistry`` instead of prometheus-client's process-global
one, so tests and several hubs in one process never clash over metric names (STYLE.md: no
process-global connections). Counters are bumped by the stages; the journal's envelope counts are
read at scrape time, so they are right even after a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from router.circuit import CircuitSnapshot
from schemas.envelope import EnvelopeStatus
from signing.inventory import CertificateInfo

__all__ = ["DELIVERY_OUTCOMES", "Metrics", "StatusCounts"]

log = logging.getLogger(__name__)

DELIVERY_OUTCOMES = ("delivered", "retry", "failed")

# Stages range from sub-millisecond (routing) to a minute (a slow SEOS peer or signing service).
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class StatusCounts(Protocol):
    """What the scrape-time collector needs from the journal (keeps SQLAlchemy out of this import)."""

    def status_counts(self) -> dict[str, int]: ...


class _JournalCollector:
    """Reads ``kurier_envelopes{status}`` from the journal at each scrape."""

    def __init__(self, journal: StatusCounts) -> None:
        self._journal = journal

    def describe(self) -> Iterable[Metric]:
        # Declared without touching the database, so registering needs no journal connection.
        return [self._envelopes(), self._up()]

    def collect(self) -> Iterable[Metric]:
        envelopes, up = self._envelopes(), self._up()
        try:
            counts = self._journal.status_counts()
        except Exception as exc:
            # A raising collector would fail the whole scrape and hide every other metric; report the
            # journal as down instead and let the alert on kurier_journal_up fire.
            log.warning("metrics: cannot read envelope counts from the journal: %s", type(exc).__name__)
            up.add_metric([], 0)
            return [up]
        # Every known status appears, 0 included, so dashboards and alerts see a series from the start.
        for status in sorted({s.value for s in EnvelopeStatus} | set(counts)):
            envelopes.add_metric([status], counts.get(status, 0))
        up.add_metric([], 1)
        return [envelopes, up]

    @staticmethod
    def _envelopes() -> GaugeMetricFamily:
        return GaugeMetricFamily("kurier_envelopes", "Envelopes in the journal by status", labels=["status"])

    @staticmethod
    def _up() -> GaugeMetricFamily:
        return GaugeMetricFamily("kurier_journal_up", "1 when the last scrape could read the journal, else 0")


class Circuit(Protocol):
    """What the circuit collector reads of a destination's breaker (:class:`router.circuit.CircuitBreaker`)."""

    def snapshot(self) -> CircuitSnapshot: ...


class _CircuitCollector:
    """``kurier_destination_circuit{destination}`` (0 closed, 1 half-open, 2 open) and the failures, at scrape time."""

    def __init__(self, circuits: Iterable[Circuit]) -> None:
        self.circuits = list(circuits)

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        state, consecutive, failures = self._families()
        for snap in (c.snapshot() for c in self.circuits):
            state.add_metric([snap.destination], int(snap.state))
            consecutive.add_metric([snap.destination], snap.consecutive_failures)
            failures.add_metric([snap.destination], snap.failures)
        return [state, consecutive, failures]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily]:
        return (
            GaugeMetricFamily("kurier_destination_circuit",
                              "Circuit breaker of a destination: 0 closed, 1 half-open (a probe may go), 2 open",
                              labels=["destination"]),
            GaugeMetricFamily("kurier_destination_consecutive_failures",
                              "Transient delivery failures in a row (the circuit opens at the threshold)",
                              labels=["destination"]),
            CounterMetricFamily("kurier_destination_failures", "Transient delivery failures since start",
                                labels=["destination"]),
        )


class _CertificateCollector:
    """``kurier_certificate_expiry_seconds{holder,subject,serial}``: seconds until each certificate expires."""

    def __init__(self) -> None:
        self.certificates: list[CertificateInfo] = []

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for info in self.certificates:
            family.add_metric([info.holder, info.subject, info.serial], info.seconds_left())
        return [family]

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("kurier_certificate_expiry_seconds",
                                 "Seconds until a certificate Kurier holds or trusts expires (negative: expired)",
                                 labels=["holder", "subject", "serial"])


class Metrics:
    """The hub's metrics, in a registry of their own; ``render()`` gives the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._certificates = _CertificateCollector()
        self.registry.register(self._certificates)
        self.documents_received = Counter(
            "kurier_documents_received", "Documents accepted from a source", ["source"], registry=self.registry
        )
        self.documents_refused = Counter(
            "kurier_documents_refused",
            "Documents refused as input, by error code",
            ["source", "code"],
            registry=self.registry,
        )
        self.documents_routed = Counter(
            "kurier_documents_routed", "Documents routed (deliveries planned)", registry=self.registry
        )
        self.deliveries = Counter(
            "kurier_deliveries",
            "Delivery attempts by destination and outcome (delivered, retry, failed)",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "kurier_stage_seconds",
            "Time spent in a stage, per batch or document",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=self.registry,
        )
        self.deliveries_deferred = Counter(
            "kurier_deliveries_deferred",
            "Deliveries not attempted because the destination's circuit was open (rescheduled, attempts unchanged)",
            ["destination"],
            registry=self.registry,
        )
        self.queue_depth = Gauge("kurier_queue_depth", "Messages waiting in a queue", ["queue"], registry=self.registry)
        self._journal_collector: _JournalCollector | None = None
        self._circuit_collector: _CircuitCollector | None = None

    # -- what the stages call ---------------------------------------------------------------------
    def received(self, source: str, n: int = 1) -> None:
        self.documents_received.labels(source=source).inc(n)

    def refused(self, source: str, code: str, n: int = 1) -> None:
        self.documents_refused.labels(source=source, code=code).inc(n)

    def routed(self, n: int = 1) -> None:
        self.documents_routed.inc(n)

    def delivery(self, destination: str, outcome: str, n: int = 1) -> None:
        """Count delivery attempts; ``outcome`` is one of delivered, retry, failed."""
        # A free-form outcome would create a new time series per typo; refuse it where it is made.
        if outcome not in DELIVERY_OUTCOMES:
            raise ValueError(f"delivery outcome {outcome!r} is not one of {', '.join(DELIVERY_OUTCOMES)}")
        self.deliveries.labels(destination=destination, outcome=outcome).inc(n)

    def deferred(self, destination: str, n: int = 1) -> None:
        self.deliveries_deferred.labels(destination=destination).inc(n)

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage=stage).observe(seconds)

    @contextmanager
    def time_stage(self, stage: str) -> Iterator[None]:
        """``with metrics.time_stage("route"): ...`` observes the block's duration, even if it raises."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_stage(stage, time.perf_counter() - start)

    def set_queue_depth(self, queue: str, n: int) -> None:
        self.queue_depth.labels(queue=queue).set(n)

    # -- scrape-time data -------------------------------------------------------------------------
    def add_journal_collector(self, journal: StatusCounts) -> None:
        """Expose ``kurier_envelopes{status}`` (and ``kurier_journal_up``) read from ``journal`` at scrape time."""
        if self._journal_collector is not None:
            # A second registration would duplicate the series; the newest journal wins.
            self.registry.unregister(self._journal_collector)
        self._journal_collector = _JournalCollector(journal)
        self.registry.register(self._journal_collector)

    def add_circuits(self, circuits: Iterable[Circuit]) -> None:
        """Expose the destinations' circuit breakers (state and failures), read at scrape time."""
        if self._circuit_collector is not None:
            self.registry.unregister(self._circuit_collector)
        self._circuit_collector = _CircuitCollector(circuits)
        self.registry.register(self._circuit_collector)

    def circuits(self) -> list[CircuitSnapshot]:
        """Every destination's breaker now, by name (what ``GET /api/v1/destinations`` shows)."""
        found = self._circuit_collector.circuits if self._circuit_collector else []
        return sorted((c.snapshot() for c in found), key=lambda s: s.destination)

    def set_certificates(self, certificates: Iterable[CertificateInfo]) -> None:
        """The certificate inventory as last read (``/metrics`` and ``GET /api/v1/certificates``)."""
        self._certificates.certificates = list(certificates)

    def certificates(self) -> list[CertificateInfo]:
        return list(self._certificates.certificates)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry: (body, content type)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
