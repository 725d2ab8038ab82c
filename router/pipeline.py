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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from router.config import SigningConfig, VerifyConfig
from router.journal import PlanOutcome, StageEvent
from router.routing import Route, RoutingTable
from router.transform import Transformer
from schemas.envelope import Envelope, EnvelopeStatus
from schemas.errors import ConfigError, KurierError, Permanent, Refused, Transient
from schemas.limits import Limits
from schemas.payloads import PayloadStore
from schemas.validation import check_envelope
from signing import RouteSigners, SignerTable
from signing.certs import read_certificates
from signing.incoming import IncomingCheck, describe_report

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
                 transformer: Transformer, signing: SignerTable, destinations: set[str],
                 verify: VerifyConfig | None = None, trust: Sequence[Path] = ()) -> None:
        self.routing = routing
        self.store = store
        self.limits = limits
        self.transformer = transformer
        self.signing = signing
        self.destinations = destinations
        self.verify = verify or VerifyConfig()
        self.trust = list(trust)  # resolved paths of verify.trust
        for path in self.trust:  # read once now: a missing or wrong anchor file stops the start, named
            try:
                read_certificates(path)
            except ConfigError as exc:
                raise ConfigError(f"signing.verify.trust: {exc}") from exc

    def signers(self) -> RouteSigners:
        """A new set of signer objects, for one worker."""
        return self.signing.build()

    def incoming_check(self) -> IncomingCheck | None:
        """A signature checker of the worker's own (asn1crypto parses lazily: not shared); None: no anchors."""
        if not self.trust:
            return None
        return IncomingCheck([cert for path in self.trust for cert in read_certificates(path)], self.verify.files)

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

    # -- verify (the signatures that came in) ---------------------------------------------------
    def _check(self, received: Envelope, changed: Envelope, check: IncomingCheck, policy: str,
               events: list[StageEvent]) -> Envelope:
        """Journal a report per signature of what came in; refuse or flag the document per ``policy``.

        The files are checked as received, before any transform: a transform changes an XML file, and
        with it what its signature covers.
        """
        reports = check.check(received, self.store)
        bad = [r for r in reports if not r.ok]
        for report in reports:
            events.append(StageEvent("verify", report.status.value, describe_report(report)))
        if not bad:
            return changed
        if policy == "refuse":
            first = bad[0]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise Permanent(f"signature check: {first.file_name}: {first.status.value}: {first.reason}{more}",
                            code="signature-invalid")
        # flag: delivered, each such file saying what was found, for the recipient's registry to see
        flags = {r.file_name: f"signature {r.status.value}: {r.reason}" for r in bad}
        flagged = [att.model_copy(update={"comment": "; ".join(filter(None, [att.comment, flags[att.file_name]]))})
                   if att.file_name in flags else att for att in changed.attachments]
        return changed.model_copy(update={"attachments": flagged})

    # -- transform, sign, route (queued) --------------------------------------------------------
    def process(self, env: Envelope, timer: StageTimer, signers: RouteSigners,
                check: IncomingCheck | None = None) -> PlanOutcome:
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

            policy = self.verify.policy(route.name)
            if policy != "off" and check is not None:
                stage = "verify"
                started = time.perf_counter()
                changed = self._check(env, changed, check, policy, events)
                timer.add(stage, started)

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
