"""The pipeline's stages: receive → validate → transform → sign → route → deliver.

``admit`` runs validate at intake, synchronously, so a source can tell its AIS at once why a document
is refused (as a SEOS receiver answers ``Submit``); nothing invalid is ever queued. ``process`` runs
transform, sign and route for a queued envelope and returns a plan the worker journals in one batch.
Every stage is idempotent: run twice on the same envelope, it decides the same.

The signer is the one configured for the envelope's route (``signing.routes``), taken from the
worker's own set (:meth:`Pipeline.signers`: signer objects are not shared between threads). A signer
that fails transiently fails that envelope alone: its plan says "retry" and the worker schedules it
with the journal's back-off, while the rest of the batch goes on.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from router.config import SigningConfig
from router.journal import PlanOutcome, StageEvent
from router.routing import Route, RoutingTable
from router.transform import Transformer
from schemas.envelope import Envelope, EnvelopeStatus
from schemas.errors import KurierError, Permanent, Refused, Transient
from schemas.limits import Limits
from schemas.payloads import PayloadStore
from schemas.validation import check_envelope
from signing import RouteSigners, SignerTable

__all__ = ["Pipeline", "StageTimer", "signer_table"]

log = logging.getLogger("kurier.pipeline")


@dataclass
class StageTimer:
    """Seconds spent per stage, for the metrics; the worker reads and resets it."""

    seconds: dict[str, float]

    def add(self, stage: str, started: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def signer_table(config: SigningConfig) -> SignerTable:
    """The configured signers and which route uses which (checked; nothing built yet)."""
    signers = {name: (signer.kind, signer.options) for name, signer in config.signers.items()}
    return SignerTable.from_settings(signers, config.routes, config.default)


class Pipeline:
    def __init__(self, *, routing: RoutingTable, store: PayloadStore, limits: Limits,
                 transformer: Transformer, signing: SignerTable, destinations: set[str]) -> None:
        self.routing = routing
        self.store = store
        self.limits = limits
        self.transformer = transformer
        self.signing = signing
        self.destinations = destinations

    def signers(self) -> RouteSigners:
        """A new set of signer objects, for one worker."""
        return self.signing.build()

    # -- validate (at intake) -------------------------------------------------------------------
    def admit(self, env: Envelope) -> Route:
        """Validate ``env``; return its route or raise :class:`Refused` saying what is wrong and why."""
        check_envelope(env, self.limits)
        for att in env.attachments:
            if self.store.size(att.sha256) != att.size:
                raise Refused(f"attachment {att.file_name!r} is not in the payload store as declared "
                              f"({att.size} bytes, SHA-256 {att.sha256[:12]}…)", code="missing-attachment")
        route = self.routing.resolve(env)
        if route is None:
            who = env.recipient.eik or env.recipient.guid
            raise Refused(f"unknown recipient {who} ({env.recipient.name or 'no name'}): no route matches it and "
                          "there is no default_route; add a route for it to the configuration",
                          code="unknown-recipient")
        return route

    # -- transform, sign, route (queued) --------------------------------------------------------
    def process(self, env: Envelope, timer: StageTimer, signers: RouteSigners) -> PlanOutcome:
        """Transform, sign and route ``env``: a plan to route it, to fail it, or (status received) to retry it.

        A transient error of the signer is this envelope's alone: the plan keeps it received, with a
        ``sign`` ``retry`` event carrying the error, for the worker to schedule. A transient error of
        any other stage (the payload store) is the infrastructure's: it is raised, and the batch is retried.
        """
        events: list[StageEvent] = []
        # A stage that had nothing to do (no transform applies, no signing policy) writes no event row of
        # its own: the route event says so. Two rows fewer per document, which the journal pays most for.
        passed: list[str] = []
        stage = "transform"
        try:
            started = time.perf_counter()
            changed, outcome, detail = self.transformer.apply(env)
            if outcome == "skipped":
                passed.append(f"transform skipped: {detail}")
            else:
                events.append(StageEvent("transform", outcome, detail))
            timer.add(stage, started)

            # The route decides the signer, so it is resolved first; signing does not change what routes match.
            stage = "route"
            route = self.routing.resolve(changed)
            if route is None:
                raise Permanent("no route matches any more (the configuration changed since intake)",
                                code="unknown-recipient")

            stage = "sign"
            started = time.perf_counter()
            signer_name, signer = signers.for_route(route.name)
            try:
                signed = signer.sign(changed, self.store)
            except Transient as exc:
                events.append(StageEvent("sign", "retry", f"signer {signer_name!r}: [{exc.code}] {exc}"))
                return PlanOutcome(env.id, EnvelopeStatus.RECEIVED, events, error_code=exc.code, error=str(exc),
                                   source=env.source)
            finally:
                timer.add(stage, started)
            if signed.outcome == "skipped":
                passed.append(f"sign skipped: {signed.detail}")
            else:
                events.append(StageEvent("sign", signed.outcome, signed.detail))

            stage = "route"
            started = time.perf_counter()
            missing = [d for d in route.destinations if d not in self.destinations]
            if missing:
                raise Permanent(f"route {route.name!r} names destinations not running: {', '.join(missing)}",
                                code="no-destination")
            detail = f"route {route.name!r} → {', '.join(route.destinations)}"
            events.append(StageEvent("route", "ok", "; ".join([detail, *passed])))
            timer.add(stage, started)
        except KurierError as exc:
            if not isinstance(exc, Permanent):
                raise  # transient outside the signer: the batch is retried, nothing journaled
            events.append(StageEvent(stage, "failed", f"[{exc.code}] {exc}"))
            return PlanOutcome(env.id, EnvelopeStatus.FAILED, events, error_code=exc.code, error=str(exc),
                               source=env.source)
        data = signed.envelope.to_json() if signed.envelope is not env else None
        return PlanOutcome(env.id, EnvelopeStatus.ROUTED, events, list(route.destinations), data=data,
                           source=env.source)
