"""Where a document's latency goes, from the journal's own events: intake, the processing hop, the delivery hop.

Each stage event carries the time its journal write began, so for one document: submitted → ``receive``
is the intake (validation, up to the journal's transaction), ``receive`` → ``route`` the intake's commit
and publish, the queue hop and the processing batch, ``route`` → ``deliver`` the plan's commit and
publish, the second hop and the delivery. At full load the longest segment names the bottleneck.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import literal, select

from router.bench.results import percentiles
from router.bench.session import epoch
from router.journal.tables import envelopes, events, status_changes
from schemas.status import RecipientStatus

if TYPE_CHECKING:
    from router.hub import Hub

__all__ = ["SEGMENTS", "segments"]

#: (label, from stage, to stage); None is the moment the bench submitted the document.
SEGMENTS = (
    ("submitted → journaled as received (intake)", None, "receive"),
    ("→ routed (publish, queue hop, processing)", "receive", "route"),
    ("→ delivered (publish, queue hop, delivery)", "route", "deliver"),
)


def segments(hub: Hub, source: str, submitted: dict[str, float]) -> list[tuple[str, float, float]]:
    """(label, p50 ms, p99 ms) per segment, over the delivered documents of ``source``."""
    stages = {stage for _, a, b in SEGMENTS for stage in (a, b) if stage}
    query = (select(events.c.envelope_id, events.c.stage, events.c.at)
             .join(envelopes, envelopes.c.id == events.c.envelope_id)
             .where(envelopes.c.source == source, events.c.stage.in_(stages)))
    # Intake writes no stage event of its own: its "accepted" status row is the moment it was journaled.
    accepted = (select(status_changes.c.envelope_id, literal("receive").label("stage"), status_changes.c.at)
                .where(status_changes.c.source == source, status_changes.c.status == RecipientStatus.ACCEPTED.value))
    seen: dict[str, dict[str, float]] = {}
    with hub.journal.engine.connect() as conn:
        for row in [*conn.execute(query), *conn.execute(accepted)]:
            at = epoch(row.at)
            times = seen.setdefault(row.envelope_id, {})
            if row.stage not in times:
                times[row.stage] = at
            elif row.stage == "deliver":
                times[row.stage] = max(times[row.stage], at)  # the last attempt: the one that delivered
            else:
                times[row.stage] = min(times[row.stage], at)
    out = []
    for label, start, end in SEGMENTS:
        spans = []
        for eid, t in seen.items():
            begin = t.get(start) if start else submitted.get(eid)
            if begin is not None and end in t:
                spans.append(t[end] - begin)
        out.append((label, *percentiles(spans)))
    return out
