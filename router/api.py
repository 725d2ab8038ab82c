"""The operations API: health, readiness, Prometheus metrics and a read-only view of the journal.

Operations staff (and their dashboards) use it to find a document by GUID, registration number or
EIK and see what happened to it. Everything but /health and /ready needs ``Authorization: Bearer``.
Handlers are plain ``def``: the journal is synchronous SQLAlchemy, and FastAPI runs them in its
threadpool. Error bodies carry English and Bulgarian text, since the operators read Bulgarian.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from router.journal import Journal, MessageDetail, MessageSummary
from router.metrics import Metrics
from schemas.envelope import EnvelopeStatus
from schemas.errors import Transient, redact_secrets

__all__ = ["ApiError", "create_app", "redact_secrets"]

log = logging.getLogger(__name__)

class ApiError(Exception):
    """An error answered as ``{"error": code, "message": "English / Български"}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


# -- response models (they are the OpenAPI docs) ------------------------------------------------
class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorResponse(_Out):
    error: str
    message: str


class HealthResponse(_Out):
    status: str


class ReadyResponse(_Out):
    status: str  # "ok" or "unavailable"
    components: dict[str, str]  # component → "ok" or what is wrong (credentials redacted)


class StatsResponse(_Out):
    envelopes: dict[str, int]  # status → count
    deliveries: dict[str, dict[str, int]]  # destination → status → count


class DestinationResponse(_Out):
    name: str
    state: str  # circuit breaker: closed, half-open (a probe may go), open (deliveries paused)
    consecutive_failures: int
    failures: int  # transient delivery failures since this process started
    outage_since: datetime | None
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    waiting: int  # deliveries pending or to retry, in the journal
    delivered: int
    failed: int


class CertificateResponse(_Out):
    holder: str  # what Kurier uses it for: "signer vidin", "trust anchor …"
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    days_left: float
    state: str  # valid, expiring (within the warning period), expired, not yet valid
    sha256: str


def _unauthorized() -> ApiError:
    # A fresh instance each time: re-raising one shared exception would keep chaining tracebacks onto it.
    return ApiError(
        401, "unauthorized", "Authentication required / Необходимо е удостоверяване", {"WWW-Authenticate": "Bearer"}
    )


_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {401: {"model": ErrorResponse}}


def create_app(journal: Journal, metrics: Metrics, token: str, ready: Callable[[], dict[str, str]],
               warn_days: float = 30.0) -> FastAPI:
    """Build the API over ``journal`` and ``metrics``; ``ready()`` maps component → "ok" or an error text."""
    if not token:
        # An empty token would let an empty "Bearer " header in: refuse to start rather than run open.
        raise ValueError("the API token is empty; set api.token or let `kurier run` generate one")
    expected = token.encode()
    bearer = HTTPBearer(auto_error=False, description="The API token (api.token, or <data_dir>/api-token)")

    def authenticate(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        # Compared as bytes: compare_digest refuses non-ASCII str, and a stray header must give 401, not 500.
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, expected):
            raise _unauthorized()

    app = FastAPI(title="Kurier operations API", version="1", summary="Health, metrics and the document journal")

    @app.exception_handler(ApiError)
    def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        body = ErrorResponse(error=exc.code, message=exc.message).model_dump()
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Transient)
    def _unavailable(_request: Request, exc: Transient) -> JSONResponse:
        # The journal (or the broker) is down: a 503 that says so and when to ask again, not a 500.
        message = (f"Temporarily unavailable, try again shortly / Временно недостъпно, опитайте след малко: "
                   f"{redact_secrets(str(exc))}")
        body = ErrorResponse(error="unavailable", message=message).model_dump()
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

    @app.get("/health", response_model=HealthResponse, tags=["probes"])
    def health() -> HealthResponse:
        """Liveness: the process answers. No authentication."""
        return HealthResponse(status="ok")

    @app.get("/ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}}, tags=["probes"])
    def readiness() -> JSONResponse:
        """Readiness: 200 when every component is "ok", else 503 with what is wrong. No authentication.

        An empty component map counts as not ready: a check that checked nothing proves nothing.
        """
        try:
            components = {str(name): redact_secrets(str(state)) for name, state in ready().items()}
        except Exception as exc:
            # The probe is unauthenticated: never echo a connection URL with its password.
            components = {"readiness": redact_secrets(f"check failed: {type(exc).__name__}: {exc}")}
            log.warning("readiness check failed: %s", components["readiness"])
        ok = bool(components) and all(state == "ok" for state in components.values())
        body = ReadyResponse(status="ok" if ok else "unavailable", components=components)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        dependencies=[Depends(authenticate)],
        tags=["probes"],
        responses={200: {"content": {"text/plain": {}}}, **_AUTH_RESPONSES},
    )
    def prometheus() -> Response:
        """Prometheus text exposition."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)], responses=_AUTH_RESPONSES, tags=["journal"])

    @api.get("/messages", response_model=list[MessageSummary])
    def messages(
        q: str | None = Query(None, description="Free text: envelope id, GUID, reg. number, subject or EIK"),
        guid: str | None = Query(None, description="SEOS DocumentGUID, with or without braces, any case"),
        reg_number: str | None = Query(None, description="The AIS's registration number, exactly"),
        eik: str | None = Query(None, description="EIK/BULSTAT of the sender or the recipient"),
        status: EnvelopeStatus | None = None,
        source: str | None = Query(None, description="The configured source that handed the document in"),
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0),
    ) -> list[MessageSummary]:
        """Search the journal, newest first."""
        found = journal.search(
            text=q,
            guid=guid,
            reg_number=reg_number,
            eik=eik,
            status=status.value if status else None,
            source=source,
            limit=limit,
            offset=offset,
        )
        return found

    @api.get("/messages/{envelope_id}", response_model=MessageDetail, responses={404: {"model": ErrorResponse}})
    def message(envelope_id: str) -> MessageDetail:
        """One document: its summary, envelope, event timeline, deliveries, and its status history per
        recipient (``statuses``, oldest first) with where it stands at each recipient now (``current``)."""
        detail = journal.get(envelope_id)
        if detail is None:
            raise ApiError(
                404, "not_found", f"No message with id {envelope_id!r} / Няма съобщение с идентификатор {envelope_id!r}"
            )
        return detail

    @api.get("/stats", response_model=StatsResponse)
    def stats() -> StatsResponse:
        """Envelope counts by status, delivery counts by destination and status."""
        by_destination: dict[str, dict[str, int]] = {}
        for (destination, status), count in journal.delivery_counts().items():
            by_destination.setdefault(destination, {})[status] = count
        return StatsResponse(envelopes=journal.status_counts(), deliveries=by_destination)

    @api.get("/destinations", response_model=list[DestinationResponse])
    def destinations() -> list[DestinationResponse]:
        """Each destination: its circuit breaker as this process sees it, and its deliveries in the journal."""
        counts = journal.delivery_counts()
        return [
            DestinationResponse(
                name=c.destination, state=c.state.label, consecutive_failures=c.consecutive_failures,
                failures=c.failures, outage_since=c.opened_at, last_success=c.last_success,
                last_error=redact_secrets(c.last_error) if c.last_error else None, last_error_at=c.last_error_at,
                waiting=counts.get((c.destination, "pending"), 0) + counts.get((c.destination, "retry"), 0),
                delivered=counts.get((c.destination, "delivered"), 0), failed=counts.get((c.destination, "failed"), 0),
            )
            for c in metrics.circuits()
        ]

    @api.get("/certificates", response_model=list[CertificateResponse])
    def certificates() -> list[CertificateResponse]:
        """Every certificate Kurier holds or trusts, soonest to expire first (read hourly)."""
        warn = timedelta(days=warn_days)
        return [CertificateResponse(holder=c.holder, subject=c.subject, issuer=c.issuer, serial=c.serial,
                                    not_before=c.not_before, not_after=c.not_after,
                                    days_left=round(c.seconds_left() / 86400, 1), state=c.state(warn), sha256=c.sha256)
                for c in metrics.certificates()]

    app.include_router(api)
    return app
