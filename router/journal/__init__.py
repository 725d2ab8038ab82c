"""The journal (SQLAlchemy 2.x, Alembic): every envelope, stage event and delivery attempt."""

from router.journal.base import fingerprint, retry_at
from router.journal.journal import Journal
from router.journal.records import (
    AcceptOutcome,
    DeliveryOutcome,
    DeliveryRecord,
    EventRecord,
    MessageDetail,
    MessageSummary,
    PlanOutcome,
    StageEvent,
    StatusRecord,
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
    "StatusRecord",
    "fingerprint",
    "retry_at",
]
