"""The sealed journal: evidence rows hash-chained by the sealer, heads timestamped, `kurier journal verify`."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import delete, func, select, update
from typer.testing import CliRunner

from router.cli import app
from router.config import SealConfig
from router.journal import Journal
from router.journal.seal import seal_once
from router.journal.tables import events, journal_seals, status_changes
from router.sealer import Sealer
from schemas.envelope import utcnow
from tests.helpers import wait_until
from tests.seal_fixtures import (
    LocalTsa,
    add_documents,
    all_sealed,
    event_ids,
    insert_event,
    make_ca,
    rechain_from,
    sealed_journal,  # noqa: F401 (the fixture)
    sealed_rows,
    start_tsa,
)

runner = CliRunner()


@pytest.fixture
def journal(sealed_journal: Journal) -> Journal:  # noqa: F811 (the imported fixture, by name)
    return sealed_journal


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[tuple[LocalTsa, Path]]:
    ca = make_ca(tmp_path / "pki")
    with start_tsa(ca) as server:
        yield server, ca.cert_pem


def _config(tmp_path: Path, journal: Journal, **seal: Any) -> Path:
    path = tmp_path / "kurier.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), "journal_url": journal.url,
                                    "seal": dict(seal)}), encoding="utf-8")
    return path


def _verify(tmp_path: Path, journal: Journal, *args: str, **seal: Any) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["journal", "verify", "-c", str(_config(tmp_path, journal, **seal)), "--json", *args])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _sealer(journal: Journal, **settings: Any) -> Sealer:
    return Sealer(journal.engine, SealConfig(**settings), threading.Event())


def test_an_untouched_journal_verifies_and_telling_a_source_is_no_tampering(journal: Journal, tmp_path: Path) -> None:
    # Given documents journaled and sealed in two blocks, and more written since (waiting for the sealer)
    add_documents(journal, 30)
    assert _sealer(journal).seal() == 60  # a status row and a stage event each
    add_documents(journal, 20)
    assert _sealer(journal).seal() == 40
    add_documents(journal, 5)
    # When the notifier records that the sources were told (bookkeeping, not evidence)
    with journal.engine.begin() as conn:
        conn.execute(update(status_changes).values(told_at=utcnow(), tell_error="the AIS did not answer"))
    # Then the journal verifies: every sealed row intact, the 10 new rows within the lag
    code, report = _verify(tmp_path, journal)
    assert (code, report["intact"], report["blocks"], report["rows"], report["pending"]) == (0, True, 2, 100, 10)
    with journal.engine.connect() as conn:
        assert (report["head_block"], report["head"]) == tuple(conn.execute(
            select(journal_seals.c.block, journal_seals.c.head).order_by(journal_seals.c.block.desc())).first() or ())
    result = runner.invoke(app, ["journal", "verify", "-c", str(_config(tmp_path, journal))])
    assert result.exit_code == 0 and "intact" in result.output


def test_a_changed_row_is_named_first(journal: Journal, tmp_path: Path) -> None:
    add_documents(journal, 20)
    _sealer(journal).seal()
    add_documents(journal, 20)
    _sealer(journal).seal()
    ids = event_ids(journal.engine)
    # When someone rewrites what a stage event says, and later a status row's status
    with journal.engine.begin() as conn:
        conn.execute(update(events).where(events.c.id == ids[25]).values(outcome="refused"))
        last = conn.execute(select(func.max(status_changes.c.seq))).scalar()
        conn.execute(update(status_changes).where(status_changes.c.seq == last).values(status="registered"))
    code, report = _verify(tmp_path, journal)
    assert code == 1
    assert report["first_row"] == f"events row {ids[25]} (sealed in block 2) was changed"
    assert [(f["kind"], f["table"], f["row_id"]) for f in report["findings"]] == [
        ("changed", "events", ids[25]), ("changed", "status_changes", last)]


def test_a_removed_row_is_named(journal: Journal, tmp_path: Path) -> None:
    add_documents(journal, 10)
    _sealer(journal).seal()
    ids = event_ids(journal.engine)
    with journal.engine.begin() as conn:
        conn.execute(delete(events).where(events.c.id == ids[3]))
    code, report = _verify(tmp_path, journal)
    assert code == 1
    assert report["first_row"] == f"events row {ids[3]} (sealed in block 1) was removed"
    assert len(report["findings"]) == 1


def test_a_row_inserted_into_a_sealed_range_is_named(journal: Journal, tmp_path: Path) -> None:
    # Given sealed rows with a hole in their ids (two transactions that rolled back), closed for good
    add_documents(journal, 5)
    top = event_ids(journal.engine)[-1]
    insert_event(journal.engine, top + 3)
    now = utcnow()
    assert seal_once(journal.engine, now=now) is not None  # the hole is an open gap: it may still commit
    closing = seal_once(journal.engine, now=now + timedelta(seconds=61))
    # (on a shared test database the ids of earlier tests' deleted rows are closed with it)
    assert closing is not None and closing.row_count == 0 and closing.closed >= 2
    assert _verify(tmp_path, journal)[0] == 0
    # When a row is slipped into the hole
    insert_event(journal.engine, top + 1)
    code, report = _verify(tmp_path, journal)
    assert code == 1
    assert [f["what"] for f in report["findings"]] == [
        f"events row {top + 1} was inserted into a sealed range (no block covers it)"]


def test_rows_committed_late_are_sealed_in_a_later_block(journal: Journal, tmp_path: Path) -> None:
    add_documents(journal, 5)
    top = event_ids(journal.engine)[-1]
    insert_event(journal.engine, top + 3)  # committed before top+1 and top+2, which were handed out first
    first = seal_once(journal.engine)
    insert_event(journal.engine, top + 1)
    insert_event(journal.engine, top + 2)
    second = seal_once(journal.engine)
    assert first is not None and second is not None and second.row_count == 2
    code, report = _verify(tmp_path, journal)
    assert (code, report["rows"], report["pending"]) == (0, 13, 0)


def test_concurrent_writers_are_sealed_whatever_order_they_commit_in(journal: Journal, tmp_path: Path) -> None:
    if journal.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has one writer at a time: ids are committed in order")
    # Given a transaction that took its ids first and commits last
    with journal.engine.connect() as slow:
        slow.execute(events.insert().values(envelope_id="s" * 32, at=utcnow(), stage="sign", outcome="ok",
                                            actor="slow worker"))
        add_documents(journal, 10)  # other workers commit meanwhile
        assert _sealer(journal).seal() == 20
        slow.commit()
    assert _sealer(journal).seal() == 1
    code, report = _verify(tmp_path, journal)
    assert (code, report["rows"], report["pending"]) == (0, 21, 0)


def test_a_row_left_unsealed_beyond_the_lag_is_a_finding(journal: Journal, tmp_path: Path) -> None:
    add_documents(journal, 3)
    _sealer(journal).seal()
    insert_event(journal.engine, at=utcnow() - timedelta(hours=1))  # written an hour ago: no sealer ran since
    code, report = _verify(tmp_path, journal)
    assert code == 1 and [f["kind"] for f in report["findings"]] == ["unsealed"]
    assert "is the sealer running?" in report["findings"][0]["what"]


def test_a_removed_or_altered_seal_block_is_detected(journal: Journal, tmp_path: Path) -> None:
    for _ in range(3):
        add_documents(journal, 3)
        _sealer(journal).seal()
    with journal.engine.begin() as conn:
        conn.execute(update(journal_seals).where(journal_seals.c.block == 3).values(row_count=1, head="ab" * 32))
        conn.execute(delete(journal_seals).where(journal_seals.c.block == 2))
    code, report = _verify(tmp_path, journal)
    kinds = [(f["kind"], f["block"]) for f in report["findings"]]
    assert code == 1
    assert ("block", 2) in kinds and ("block", 3) in kinds  # missing, and altered
    assert {f["kind"] for f in report["findings"]} == {"block", "inserted"}  # block 2's rows: covered by none


def test_the_timestamped_head_verifies_and_a_rewritten_chain_does_not(journal: Journal, tmp_path: Path,
                                                                      tsa: tuple[LocalTsa, Path]) -> None:
    server, ca_pem = tsa
    settings = {"tsa_url": server.url, "tsa_trust": [str(ca_pem)]}
    sealer = _sealer(journal, **settings)
    add_documents(journal, 10)
    sealer.seal()
    assert sealer.stamp() and server.requests == 1
    assert not sealer.stamp()  # not again before tsa_interval_seconds
    code, report = _verify(tmp_path, journal, **settings)
    assert (code, report["timestamps"]) == (0, 1)
    # A TSA the verifier does not trust is a finding
    other = make_ca(tmp_path / "other", "Someone Else's CA")
    code, report = _verify(tmp_path, journal, "--tsa-trust", str(other.cert_pem), **settings)
    assert code == 1 and "does not chain" in report["findings"][0]["what"]
    # A token whose signature was tampered with (its last byte is the signature's) is a finding
    with journal.engine.begin() as conn:
        token = bytes(conn.execute(select(journal_seals.c.tsa_token)).scalar_one())
        conn.execute(update(journal_seals).values(tsa_token=token[:-1] + bytes([token[-1] ^ 1])))
    code, report = _verify(tmp_path, journal, **settings)
    assert code == 1 and "does not verify" in report["findings"][0]["what"]
    with journal.engine.begin() as conn:
        conn.execute(update(journal_seals).values(tsa_token=token))
    # When an intruder changes a row and recomputes the whole chain to match
    first = event_ids(journal.engine)[0]
    with journal.engine.begin() as conn:
        conn.execute(update(events).where(events.c.id == first).values(detail="друго"))
    rechain_from(journal.engine, 1)
    # Then only the timestamp tells, and it does
    code, report = _verify(tmp_path, journal, **settings)
    assert code == 1
    assert [(f["kind"], f["block"]) for f in report["findings"]] == [("timestamp", 1)]
    assert "stamps another head" in report["findings"][0]["what"]


def test_a_tsa_that_is_down_costs_only_the_timestamp(journal: Journal, tmp_path: Path) -> None:
    sealer = _sealer(journal, tsa_url="http://127.0.0.1:9/tsa", tsa_timeout_seconds=1)
    add_documents(journal, 4)
    assert sealer.seal() == 8
    assert not sealer.stamp()
    assert sealer.tsa_outage.down
    assert _verify(tmp_path, journal)[0] == 0


def test_the_sealer_continues_its_chain_after_a_restart(journal: Journal, tmp_path: Path) -> None:
    def run_sealer(documents: int) -> None:
        stop = threading.Event()
        engine_owner = Journal(journal.url)  # a new process would have a new engine
        sealer = Sealer(engine_owner.engine, SealConfig(interval_seconds=0.05), stop)
        sealer.start()
        add_documents(journal, documents)
        with journal.engine.connect() as conn:
            target = conn.execute(select(func.count()).select_from(events)).scalar()
        wait_until(lambda: sealed_rows(journal) == 2 * target, timeout=20, what="rows sealed")
        stop.set()
        sealer.join(timeout=10)
        engine_owner.dispose()

    run_sealer(10)
    run_sealer(7)
    with journal.engine.connect() as conn:
        blocks = conn.execute(select(journal_seals.c.block, journal_seals.c.prev_head, journal_seals.c.head)
                              .order_by(journal_seals.c.block)).all()
    assert [b.block for b in blocks] == list(range(1, len(blocks) + 1)) and len(blocks) >= 2
    assert all(b.prev_head == a.head for a, b in itertools.pairwise(blocks))
    code, report = _verify(tmp_path, journal)
    assert (code, report["rows"]) == (0, 34)


def _hub_round(tmp_path: Path, backend: dict[str, str], delivered: int) -> None:
    """A hub started, three documents through it, every row it journaled sealed by its sealer, stopped."""
    from router.hub import Hub
    from tests.helpers import envelope, hub_config

    hub = Hub(hub_config(tmp_path, backend, seal={"interval_seconds": 0.05},
                         connections={"sink": {"adapter": "memory"}}, default_route={"deliver_to": ["sink"]}))
    hub.start()
    try:
        for _ in range(3):
            hub.submit(envelope())
        wait_until(lambda: hub.journal.count(status="delivered") == delivered, what="delivered")
        wait_until(lambda: all_sealed(hub.journal), timeout=20, what="the hub's rows sealed")
    finally:
        hub.stop()


def test_the_hub_seals_what_it_journals_and_goes_on_after_a_restart(tmp_path: Path) -> None:
    backend = {"broker_url": "memory://", "journal_url": f"sqlite:///{tmp_path / 'journal.sqlite3'}"}
    _hub_round(tmp_path, backend, 3)
    _hub_round(tmp_path, backend, 6)  # a restarted hub's sealer goes on from the last block
    journal = Journal(backend["journal_url"])
    try:
        code, report = _verify(tmp_path, journal)
        assert code == 0 and report["blocks"] >= 2 and report["pending"] == 0
    finally:
        journal.dispose()


def test_the_seal_command_seals_what_is_committed(journal: Journal, tmp_path: Path) -> None:
    add_documents(journal, 4)
    result = runner.invoke(app, ["journal", "seal", "-c", str(_config(tmp_path, journal))])
    assert result.exit_code == 0 and "8 row(s) sealed" in result.output
    assert sealed_rows(journal) == 8


def test_two_sealers_racing_write_one_chain(journal: Journal, tmp_path: Path) -> None:
    # Given two hubs' sealers on one journal while documents keep arriving
    stop = threading.Event()
    errors: list[BaseException] = []

    def seal_until_stopped() -> None:
        try:
            while not stop.is_set():
                seal_once(journal.engine, max_rows=7)  # small blocks: many chances to collide
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=seal_until_stopped) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(15):
        add_documents(journal, 3)
    wait_until(lambda: all_sealed(journal), timeout=20, what="everything sealed")
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    # Then each row is sealed once, in one unbroken chain
    assert not errors
    code, report = _verify(tmp_path, journal)
    assert (code, report["rows"], report["pending"]) == (0, 90, 0)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_bench_seals_as_configured(tmp_path: Path, enabled: bool) -> None:
    # `KURIER_SEAL__ENABLED=false kurier bench ...` measures the pipeline without the sealer
    from router.bench.session import bench_hub
    from router.config import load_config

    base = load_config(None, data_dir=str(tmp_path), seal={"enabled": enabled})
    with bench_hub(base, 0, {"sink": {"adapter": "memory", "keep": False}}, ["sink"]) as hub:
        assert any(isinstance(t, Sealer) and t.is_alive() for t in hub._threads) == enabled
