"""The journal (SQLAlchemy 2.x, Alembic): every envelope, stage event and delivery attempt."""

from router.journal.journal import (
    AcceptOutcome,
    DeliveryOutcome,
    DeliveryRecord,
    EventRecord,
    Journal,
    MessageDetail,
    MessageSummary,
    PlanOutcome,
    StageEvent,
    fingerprint,
    retry_at,
)

__all__ = [
    "AcceptOutcome",
    "DeliveryOutcome",
    "DeliveryRecord",
    "EventRecord",
    "Journal",
    "MessageDetail",
    "MessageSummary",
    "PlanOutcome",
    "StageEvent",
    "fingerprint",
    "retry_at",
]
