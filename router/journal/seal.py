"""Sealing: evidence rows, once committed, are hash-chained into blocks of ``journal_seals``.

Writers never wait on a chain head: the sealer (one thread, :class:`router.sealer.Sealer`) reads what
was committed since its last block, in id order, and appends a block::

    head(n) = SHA-256( head(n-1) || len(meta) || meta || H(row 1) || H(row 2) || ... )

``meta`` (JSON) names the block, the rows it covers (id ranges per table), the gaps it closes and the
sealer's state after it. Ids are handed out before their transactions commit, so a pass can see id 12
before id 11 is committed: 11 is then an open *gap*, looked for again at each pass and sealed in a
later block when it appears; one still missing after ``gap_seconds`` (a rolled-back transaction) is
*closed* in a block, so a row that turns up there later was inserted into a sealed range. The state is
in each block, so a restarted sealer (or another hub's) goes on from the last one.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select
from sqlalchemy.exc import IntegrityError

from router.journal.canonical import EVIDENCE, Evidence, row_hash
from router.journal.tables import journal_seals
from schemas.envelope import utcnow

__all__ = ["ZERO_HEAD", "Block", "SealState", "block_head", "last_state", "ranges", "seal_once"]

ZERO_HEAD = "0" * 64
Range = tuple[int, int]  # inclusive


def ranges(ids: Iterable[int]) -> list[Range]:
    """Sorted ids as inclusive ranges: [1, 2, 3, 7] → [(1, 3), (7, 7)]."""
    out: list[Range] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def block_head(prev_head: str, meta: bytes, row_hashes: bytes) -> str:
    digest = hashlib.sha256(bytes.fromhex(prev_head))
    digest.update(len(meta).to_bytes(8, "big"))
    digest.update(meta)
    digest.update(row_hashes)
    return digest.hexdigest()


@dataclass
class TableState:
    next_id: int = 1  # every id below it is sealed, closed, or an open gap
    gaps: list[tuple[int, int, float]] = field(default_factory=list)  # open: (first id, last id, first seen)


@dataclass
class SealState:
    block: int = 0  # the last block's number (0: none yet)
    head: str = ZERO_HEAD
    tables: dict[str, TableState] = field(default_factory=dict)

    def table(self, name: str) -> TableState:
        return self.tables.setdefault(name, TableState())

    def to_json(self) -> dict[str, Any]:
        return {name: {"next": t.next_id, "gaps": [list(g) for g in t.gaps]} for name, t in self.tables.items()}

    @classmethod
    def from_json(cls, block: int, head: str, data: dict[str, Any]) -> SealState:
        tables = {name: TableState(int(t["next"]), [(int(a), int(b), float(s)) for a, b, s in t["gaps"]])
                  for name, t in data.items()}
        return cls(block, head, tables)


@dataclass(frozen=True)
class Block:
    number: int
    head: str
    row_count: int
    closed: int  # gap ids closed for good


def last_state(conn: Connection) -> SealState:
    """The sealer's state after the newest block (nothing sealed yet: the empty state)."""
    row = conn.execute(select(journal_seals.c.block, journal_seals.c.head, journal_seals.c.meta)
                       .order_by(journal_seals.c.block.desc()).limit(1)).first()
    if row is None:
        return SealState()
    return SealState.from_json(int(row.block), row.head, json.loads(row.meta)["state"])


def _in_ranges(ev: Evidence, spans: Sequence[Range]) -> Any:
    return or_(*(and_(ev.key >= lo, ev.key <= hi) for lo, hi in spans))


def _missing(lo: int, hi: int, ids: Sequence[int]) -> list[Range]:
    """The ranges of [lo, hi] that none of the sorted ``ids`` is in (without walking every id between)."""
    out: list[Range] = []
    at = lo
    for i in ids:
        if i < at:
            continue
        if i > hi:
            break
        if i > at:
            out.append((at, i - 1))
        at = i + 1
    if at <= hi:
        out.append((at, hi))
    return out


def _subtract(gaps: list[tuple[int, int, float]], ids: Sequence[int]) -> list[tuple[int, int, float]]:
    """What is still missing of each open gap, with the time it was first seen."""
    return [(a, b, seen) for lo, hi, seen in gaps for a, b in _missing(lo, hi, ids)]


_CLUSTER = 1000  # gaps closer than this many ids are read as one range


def _clusters(spans: Sequence[Range]) -> list[Range]:
    out: list[Range] = []
    for lo, hi in spans:
        if out and lo - out[-1][1] <= _CLUSTER:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _inside(spans: Sequence[Range], starts: Sequence[int], row_id: int) -> bool:
    i = bisect.bisect_right(starts, row_id) - 1
    return i >= 0 and spans[i][0] <= row_id <= spans[i][1]


def _read(conn: Connection, ev: Evidence, st: TableState, max_rows: int) -> list[Sequence[Any]]:
    """The rows that filled open gaps, and the next ``max_rows`` rows past the state's end, by id."""
    rows: list[Sequence[Any]] = []
    spans = [(a, b) for a, b, _ in st.gaps]
    if spans:
        # Concurrent COPYs interleave their ids, so a busy journal leaves many one-id gaps side by side:
        # each cluster of them is read as one range (a few rows more), not as hundreds of ORs.
        starts = [a for a, _ in spans]
        clusters = _clusters(spans)
        rows += [r for r in conn.execute(select(*ev.columns).where(_in_ranges(ev, clusters)))
                 if _inside(spans, starts, int(r[0]))]
    rows += conn.execute(select(*ev.columns).where(ev.key >= st.next_id).order_by(ev.key).limit(max_rows)).all()
    return sorted(rows, key=lambda r: int(r[0]))


def seal_once(engine: Engine, *, max_rows: int = 20000, gap_seconds: float = 60.0,
              now: datetime | None = None) -> Block | None:
    """Seal what was committed since the last block into a new one; None when there was nothing to seal
    (or another sealer wrote that block first: the next pass starts from its state)."""
    now = now or utcnow()
    clock = now.timestamp()
    with engine.connect() as conn:
        state = last_state(conn)
        covered: dict[str, list[Range]] = {}
        closed: dict[str, list[Range]] = {}
        hashes: list[bytes] = []
        for ev in EVIDENCE:
            st = state.table(ev.name)
            rows = _read(conn, ev, st, max_rows)
            ids = [int(r[0]) for r in rows]
            gaps = _subtract(st.gaps, ids)
            top = max(ids[-1] if ids else 0, st.next_id - 1)
            gaps += [(a, b, clock) for a, b in _missing(st.next_id, top, ids)]
            st.next_id = top + 1
            expired = [(a, b) for a, b, seen in gaps if clock - seen >= gap_seconds]
            st.gaps = [g for g in gaps if clock - g[2] < gap_seconds]
            if ids:
                covered[ev.name] = ranges(ids)
                hashes += [row_hash(ev, r) for r in rows]
            if expired:
                closed[ev.name] = expired
        conn.rollback()  # end the read transaction before the write
        if not hashes and not closed:
            return None
        number = state.block + 1
        meta = json.dumps({"v": 1, "block": number, "rows": covered, "closed": closed, "state": state.to_json()},
                          separators=(",", ":"), sort_keys=True).encode()
        blob = b"".join(hashes)
        head = block_head(state.head, meta, blob)
        try:
            with conn.begin():
                conn.execute(insert(journal_seals).values(
                    block=number, created_at=now, prev_head=state.head, head=head, row_count=len(hashes),
                    meta=meta.decode(), row_hashes=blob))
        except IntegrityError:
            return None
    return Block(number, head, len(hashes), sum(b - a + 1 for spans in closed.values() for a, b in spans))
