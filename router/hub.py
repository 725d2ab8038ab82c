"""The hub: builds every part from the configuration and runs them together.

``Hub`` is also the :class:`~adapters.base.Intake` that sources submit to: validate, journal, queue —
in that order, so a document is either refused with a reason or journaled before anyone is told it
was accepted — and the :class:`~adapters.base.StatusReporter` that destinations report later statuses to.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from adapters import AdapterContext, Connection, Destination, Receipt, Source, build_connection
from router.config import KurierConfig
from router.delivery import delivery_workers, destination_circuits
from router.journal import AcceptOutcome, Journal
from router.messages import inbound_messages
from router.metrics import Metrics
from router.notify import Notifier
from router.pipeline import Pipeline, signer_table
from router.queues import Broker, ConfirmingPublisher, Topology
from router.recovery import Sweeper
from router.routing import RoutingTable
from router.store import FileStore
from router.transform import Transformer
from router.wiring import plan_connections
from router.workers import ProcessWorker
from schemas.envelope import Envelope
from schemas.errors import KurierError, Permanent, Refused, Transient, redact_secrets
from schemas.outage import Outage
from schemas.status import StatusReport

__all__ = ["ALL_ROLES", "Hub"]

log = logging.getLogger("kurier.hub")

ALL_ROLES = frozenset({"process", "deliver", "sweep", "seal", "sources"})



class Hub:
    def __init__(self, config: KurierConfig, *, with_sources: bool = True) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.actor = config.node_name or f"{socket.gethostname()}:{os.getpid()}"
        self.journal = Journal(config.resolved_journal_url, actor=self.actor)
        self.store = FileStore(config.store_dir, max_bytes=config.limits.max_document_bytes)
        ctx = AdapterContext(config.data_dir, self.store, config.limits, statuses=self)
        plans = plan_connections(config)
        self.connections: dict[str, Connection] = {name: build_connection(plan, ctx) for name, plan in plans.items()}
        self.destinations: dict[str, Destination] = {
            name: conn.destination for name, conn in self.connections.items() if conn.destination is not None
        }
        self.sources: dict[str, Source] = {
            name: conn.source for name, conn in self.connections.items() if conn.source is not None and with_sources
        }
        self.routing = RoutingTable(config.routes, config.default_route)
        self.topology = Topology(config.queue_prefix, self.destinations)
        self.broker = Broker(config.broker_url, self.topology)
        transformer = Transformer(config.transforms, config.resolve_path, self.store, config.limits.max_xml_bytes)
        self.pipeline = Pipeline(routing=self.routing, store=self.store, limits=config.limits, transformer=transformer,
                                 signing=signer_table(config.signing), destinations=set(self.destinations),
                                 verify=config.signing.verify,
                                 trust=[config.resolve_path(p) for p in config.signing.verify.trust])
        self.metrics = Metrics()
        self.metrics.add_journal_collector(self.journal)
        self.circuits = destination_circuits(config, self.destinations, self.journal)
        self.metrics.add_circuits(self.circuits.values())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._intake_lock = threading.Lock()
        self._intake_conn: Any = None
        self._intake_publisher: ConfirmingPublisher | None = None
        self._queueing = Outage("the hub's intake: queueing received documents", log)
        self._unqueued: set[str] = set()  # journaled during a queueing outage, waiting for the sweeper
        self._children: list[Any] = []
        self._notifier: Notifier | None = None
        self.started = False

    # -- life cycle -------------------------------------------------------------------------------
    def start(self, *, migrate: bool = True, roles: frozenset[str] = ALL_ROLES) -> None:
        """Start the parts named in ``roles`` (all by default; extra worker processes run only workers)."""
        if migrate:
            self.journal.upgrade()
        self.broker.declare()
        spawn = "sources" in roles and self.config.processing.worker_processes
        if spawn:
            roles = roles - {"seal"}  # the sealer gets a process of its own (procs.spawn_hub_processes)
        common = dict(config=self.config, journal=self.journal, metrics=self.metrics, stop=self._stop)
        self._threads = []
        if "process" in roles:
            self._threads.append(
                ProcessWorker("process", self.broker, [self.topology.inbound], pipeline=self.pipeline, **common))
        if "deliver" in roles:
            self._threads += delivery_workers(self.broker, self.topology, self.destinations, self.circuits, **common)
        if "sweep" in roles:
            self._threads.append(Sweeper(self.journal, self.broker, self.config, self._stop, self.metrics))
            retry = self.config.retry
            self._notifier = Notifier(self.journal, self.connections, self._stop,
                                      interval=min(1.0, self.config.processing.sweep_interval_seconds),
                                      # Telling is cheap and an AIS waits for it: never more than a minute apart.
                                      first_delay=min(retry.first_delay_seconds, 60.0),
                                      max_delay=min(retry.max_delay_seconds, 60.0))
            self._threads.append(self._notifier)
            from router.certificates import CertificateWatch

            self._threads.append(CertificateWatch(self.config, self._stop, self.metrics.set_certificates))
        if "seal" in roles and self.config.seal.enabled:
            from router.sealer import Sealer

            self._threads.append(Sealer(self.journal.engine, self.config.seal, self._stop))
        for thread in self._threads:
            thread.start()
        if "sources" in roles:
            for source in self.sources.values():
                source.start(self)
        self._children = []
        if spawn:
            from router.procs import spawn_hub_processes

            self._children = spawn_hub_processes(self.config, self.config.processing.worker_processes)
        self.started = True
        log.info("Kurier started: journal %s, broker %s, %d source(s), %d destination(s)",
                 self.journal.engine.url.render_as_string(hide_password=True),
                 redact_secrets(self.config.broker_url, limit=None),
                 len(self.sources), len(self.destinations))

    def stop(self) -> None:
        for source in self.sources.values():
            source.stop()
        if self._children:
            from router.procs import stop_workers

            stop_workers(self._children)
            self._children = []
        self._stop.set()
        if self._notifier is not None:
            self._notifier.wake()  # out of its wait, to see the stop
        for thread in self._threads:
            thread.join(timeout=30)
        for conn in self.connections.values():
            conn.close()
        with self._intake_lock:
            if self._intake_conn is not None:
                self._intake_conn.release()
                self._intake_conn = None
                self._intake_publisher = None
        self.journal.dispose()
        self.started = False

    def ready(self) -> dict[str, str]:
        status: dict[str, str] = {}
        try:
            self.journal.ping()
            status["journal"] = "ok"
        except KurierError as exc:
            status["journal"] = str(exc)  # the journal's errors are written for operators, passwords hidden
        except Exception as exc:
            status["journal"] = f"unreachable: {type(exc).__name__}"
        try:
            self.broker.ping()
            status["broker"] = "ok"
        except Exception as exc:
            status["broker"] = str(exc)
        dead = [t.name for t in self._threads if not t.is_alive()]
        status["workers"] = "ok" if self.started and not dead else f"not running: {', '.join(dead) or 'all'}"
        return status

    # -- intake -----------------------------------------------------------------------------------
    def submit(self, envelope: Envelope) -> Receipt:
        result = self.submit_many([envelope])[0]
        if isinstance(result, KurierError):
            raise result
        return result

    def submit_many(self, batch: Sequence[Envelope]) -> list[Receipt | Refused]:
        """Validate, journal and queue documents; a refusal is journaled and returned in its place."""
        results: list[Receipt | Refused | None] = [None] * len(batch)
        valid: list[tuple[int, Envelope]] = []
        for i, env in enumerate(batch):
            try:
                self.pipeline.admit(env)
                valid.append((i, env))
            except Refused as exc:
                results[i] = self._refused(env, "validate", exc)
        outcomes = self._accept([env for _, env in valid]) if valid else []
        to_queue: list[Envelope] = []
        for (i, env), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, Refused):
                results[i] = outcome
                continue
            if outcome.conflict:
                results[i] = self._refused(env, "receive", Refused(
                    f"DocumentGUID {env.document_guid} was already received from {env.source} with different "
                    f"content (journal id {outcome.envelope_id}); a new document needs a new GUID",
                    code="duplicate-guid"))
                continue
            results[i] = Receipt(outcome.envelope_id, duplicate=outcome.duplicate)
            if not outcome.duplicate:
                to_queue.append(env)
                self.metrics.received(env.source)
            elif outcome.status == "received":
                # A resend of something not yet processed (e.g. the source crashed before it could
                # mark it done): queue it again; processing is idempotent.
                to_queue.append(env.model_copy(update={"id": outcome.envelope_id}))
        if to_queue:
            self._publish_inbound(to_queue)
        return [r for r in results if r is not None]

    def _accept(self, envs: Sequence[Envelope]) -> list[AcceptOutcome | Refused]:
        """Journal valid documents; one the journal cannot hold for good is refused with the journal's reason.

        A transient failure (the database is down) raises: nothing was accepted and the source tries again.
        """
        try:
            # No stage events of its own: the "accepted" status row the journal writes says the document
            # was received and validated (a refusal writes its event), two rows fewer per document.
            return list(self.journal.accept(envs))
        except Permanent as exc:
            if len(envs) > 1:  # which one? each alone: the others must not share its fate
                return [outcome for env in envs for outcome in self._accept([env])]
            return [self._refused(envs[0], "receive", Refused(str(exc), code=exc.code))]

    def refuse(self, source: str, what: str, error: KurierError, envelope: Envelope | None = None,
               stage: str = "receive") -> str:
        """Journal and count a refusal; ``envelope`` when the input could be read that far."""
        journal_id = self.journal.refuse(envelope, source=source, stage=stage, error_code=error.code,
                                         error=str(error), what=what if envelope is None else None)
        self.metrics.refused(source, error.code)
        return journal_id

    # -- statuses reported by destinations --------------------------------------------------------
    def report(self, connection: str, report: StatusReport) -> None:
        """Journal a later status of a document delivered through ``connection``; its source is told.

        Raises :class:`Refused` for a document never delivered there, :class:`Transient` while the journal
        is unavailable or the delivery is not journaled yet (reports are idempotent: report it again).
        """
        try:
            recorded = self.journal.record_report(connection, report)
        except (OperationalError, InterfaceError) as exc:
            raise Transient(f"the journal is unavailable, report again later: {redact_secrets(str(exc))}") from exc
        except DBAPIError as exc:  # the database refuses this report's values: repeating cannot help
            raise Refused(f"the journal cannot record this report: {redact_secrets(str(exc))}",
                          code="invalid-report") from exc
        if recorded:
            log.info("%s reported %s for %s", connection, report.status.value, report.document_guid)
            if self._notifier is not None:
                self._notifier.wake()

    def _refused(self, env: Envelope, stage: str, exc: Refused) -> Refused:
        journal_id = self.refuse(env.source, "", exc, env, stage)
        return Refused(str(exc), code=exc.code, journal_id=journal_id)

    def _publish_inbound(self, envs: Sequence[Envelope]) -> None:
        messages = inbound_messages(envs, self.config.processing.batch_size)
        with self._intake_lock:
            try:
                if self._intake_publisher is None:
                    self._intake_conn = self.broker.connect()
                    self._intake_publisher = ConfirmingPublisher(self._intake_conn, self.topology)
                self._intake_publisher.publish(messages)
            except Exception as exc:
                # Journaled but not queued: the sweeper re-queues them after the grace period, and a
                # source that resubmits gets them queued at once. Tell the source to try again.
                if self._intake_conn is not None:
                    with contextlib.suppress(Exception):  # already broken
                        self._intake_conn.release()
                self._intake_conn = self._intake_publisher = None
                self._unqueued.update(env.id for env in envs)
                self._queueing.failed(f"{exc}; the documents are journaled and the sweeper will queue them",
                                      waiting=len(self._unqueued))
                raise Transient(f"queueing failed, the documents are journaled and will be queued: {exc}") from exc
            self._queueing.recovered()
            self._unqueued.clear()
