"""Verifying the sealed journal: every block, every sealed row, every timestamp; what `kurier journal verify` runs.

A walk over the blocks in order recomputes each head from its contents and checks it continues the
previous one, recomputes every covered row's hash against the one sealed, and checks each timestamp
token against its block's head. Then one pass over each table's ids finds the rows no block covers:
inside what the sealer had already passed they were inserted afterwards; past it (or in a gap still
open) they are waiting for the sealer, which is a finding only once older than the lag.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, func, or_, select

from router.journal.canonical import EVIDENCE, Evidence, row_hash
from router.journal.seal import ZERO_HEAD, Range, SealState, block_head
from router.journal.tables import journal_seals
from router.journal.tsa import check_token
from schemas.envelope import utcnow

if TYPE_CHECKING:
    from asn1crypto import x509

__all__ = ["Finding", "SealReport", "verify_seals"]


@dataclass(frozen=True)
class Finding:
    kind: str  # changed, removed, inserted, unsealed, block, timestamp
    what: str  # for the operator: which row or block, and what is wrong with it
    table: str | None = None
    row_id: int | None = None
    block: int | None = None


@dataclass
class SealReport:
    blocks: int = 0
    rows: int = 0  # sealed rows checked
    timestamps: int = 0  # tokens that verify
    last_timestamp: datetime | None = None
    pending: int = 0  # rows not sealed yet, within the lag
    head_block: int = 0
    head: str = ""  # the newest block's head: to compare with a record kept elsewhere (the sealer logs it)
    findings: list[Finding] = field(default_factory=list)
    more: int = 0  # findings beyond those kept

    @property
    def intact(self) -> bool:
        return not self.findings

    @property
    def first_row(self) -> Finding | None:
        """The first row, in the chain's order, that was changed or removed."""
        return next((f for f in self.findings if f.kind in ("changed", "removed")), None)


class _Walk:
    def __init__(self, report: SealReport, limit: int) -> None:
        self.report, self.limit = report, limit

    def add(self, finding: Finding) -> None:
        if len(self.report.findings) < self.limit:
            self.report.findings.append(finding)
        else:
            self.report.more += 1


def _check_rows(conn: Connection, walk: _Walk, ev: Evidence, number: int, spans: Sequence[Range],
                hashes: bytes, offset: int) -> int:
    """Compare the rows of ``spans`` with their sealed hashes (from ``offset``); the offset after them."""
    for lo, hi in spans:
        rows = conn.execute(select(*ev.columns).where(and_(ev.key >= lo, ev.key <= hi)).order_by(ev.key)).all()
        present = {int(r[0]): r for r in rows}
        for row_id in range(lo, hi + 1):
            sealed = hashes[offset:offset + 32]
            offset += 32
            row = present.get(row_id)
            if row is None:
                walk.add(Finding("removed", f"{ev.name} row {row_id} (sealed in block {number}) was removed",
                                 ev.name, row_id, number))
            elif row_hash(ev, row) != sealed:
                walk.add(Finding("changed", f"{ev.name} row {row_id} (sealed in block {number}) was changed",
                                 ev.name, row_id, number))
        walk.report.rows += hi - lo + 1
    return offset


def _walk_blocks(conn: Connection, rows_conn: Connection, walk: _Walk, trust: Sequence[x509.Certificate],
                 covered: dict[str, list[Range]]) -> SealState:
    state, expected, prev_head = SealState(), 1, ZERO_HEAD
    limits: dict[str, int] = {}
    blocks = conn.execution_options(yield_per=100).execute(select(journal_seals).order_by(journal_seals.c.block))
    for b in blocks:
        number = int(b.block)
        walk.report.blocks += 1
        if number != expected:
            walk.add(Finding("block", f"seal blocks {expected}–{number - 1} are missing (removed)", block=expected))
        if b.prev_head != prev_head:
            walk.add(Finding("block", f"block {number} does not continue the chain: its previous head is not "
                                      f"block {number - 1}'s", block=number))
        blob = bytes(b.row_hashes)
        if block_head(b.prev_head, b.meta.encode(), blob) != b.head:
            walk.add(Finding("block", f"block {number} was altered: its head does not follow from its contents",
                             block=number))
        try:
            meta: dict[str, Any] = json.loads(b.meta)
            state = SealState.from_json(number, b.head, meta["state"])
        except (ValueError, KeyError, TypeError) as exc:
            walk.add(Finding("block", f"block {number} cannot be read: {exc}", block=number))
            expected, prev_head = number + 1, b.head
            continue
        offset = 0
        for ev in EVIDENCE:
            spans = [(int(lo), int(hi)) for lo, hi in meta["rows"].get(ev.name, [])]
            offset = _check_rows(rows_conn, walk, ev, number, spans, blob, offset)
            covered[ev.name] += spans
            if len(covered[ev.name]) > limits.get(ev.name, _COALESCE_AT):
                covered[ev.name] = _coalesce(covered[ev.name])
                limits[ev.name] = 2 * len(covered[ev.name]) + _COALESCE_AT  # not again at every block
        if b.tsa_token is not None:
            check = check_token(bytes(b.tsa_token), b.head, trust)
            if check.ok:
                walk.report.timestamps += 1
                walk.report.last_timestamp = check.at
            else:
                walk.add(Finding("timestamp", f"block {number}: timestamp of {check.at}: {check.problem}",
                                 block=number))
        expected, prev_head = number + 1, b.head
    walk.report.head_block, walk.report.head = expected - 1, prev_head
    return state


_COALESCE_AT = 10000


def _coalesce(spans: list[Range]) -> list[Range]:
    """Sorted and merged: a block's rows are fragments (gaps filled later), the union of all blocks is few
    ranges (holes only where gaps were closed), so a verify of months of blocks stays small in memory."""
    out: list[Range] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def _within(spans: Sequence[Range], starts: Sequence[int], row_id: int) -> bool:
    i = bisect.bisect_right(starts, row_id) - 1
    return i >= 0 and spans[i][0] <= row_id <= spans[i][1]


def _unsealed(conn: Connection, walk: _Walk, ev: Evidence, state: SealState, covered: list[Range],
              cutoff: datetime) -> None:
    """Rows no block covers: inserted (inside what the sealer passed) or waiting (past it, or in an open gap)."""
    st = state.table(ev.name)
    spans = _coalesce(covered)
    starts = [lo for lo, _ in spans]
    gaps = sorted((lo, hi) for lo, hi, _ in st.gaps)
    gap_starts = [lo for lo, _ in gaps]
    waiting = 0
    for (row_id,) in conn.execution_options(yield_per=10000).execute(select(ev.key).order_by(ev.key)):
        if _within(spans, starts, row_id):
            continue
        if row_id >= st.next_id or _within(gaps, gap_starts, row_id):
            waiting += 1
        else:
            walk.add(Finding("inserted", f"{ev.name} row {row_id} was inserted into a sealed range "
                                         "(no block covers it)", ev.name, row_id))
    if not waiting:
        return
    pending = or_(ev.key >= st.next_id, *(and_(ev.key >= lo, ev.key <= hi) for lo, hi in gaps))
    stale = conn.execute(select(ev.key, ev.at).where(pending, ev.at < cutoff).order_by(ev.key).limit(1)).first()
    if stale is None:
        walk.report.pending += waiting
        return
    old = conn.execute(select(func.count()).where(pending, ev.at < cutoff)).scalar() or 0
    walk.report.pending += waiting - old
    walk.add(Finding("unsealed", f"{ev.name} row {stale[0]} and {old - 1} more were written before {cutoff:%H:%M:%S} "
                                 "and are not sealed: is the sealer running?", ev.name, int(stale[0])))


def verify_seals(engine: Engine, *, lag_seconds: float = 120.0, trust: Sequence[x509.Certificate] = (),
                 now: datetime | None = None, max_findings: int = 100) -> SealReport:
    """Check the whole sealed journal; ``report.intact`` only when nothing was changed, removed or inserted
    and nothing older than ``lag_seconds`` waits unsealed."""
    report = SealReport()
    walk = _Walk(report, max_findings)
    covered: dict[str, list[Range]] = {ev.name: [] for ev in EVIDENCE}
    cutoff = (now or utcnow()) - timedelta(seconds=lag_seconds)
    with engine.connect() as conn, engine.connect() as rows_conn:
        state = _walk_blocks(conn, rows_conn, walk, trust, covered)
        conn.rollback()
        for ev in EVIDENCE:
            _unsealed(conn, walk, ev, state, covered[ev.name], cutoff)
    return report
