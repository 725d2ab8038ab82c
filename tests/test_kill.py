"""No document is ever lost: kill -9 a running hub mid-stream, restart it, and every document accepted
is delivered exactly once. On the embedded transport and on RabbitMQ + PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.filedrop.testing import MUNICIPALITY, REGION, SampleDocument, write_document
from router.config import load_config
from router.journal import Journal
from tests.helpers import delete_queues, wait_until

pytestmark = pytest.mark.slow

DOCUMENTS = 300


class ConsumingAis(threading.Thread):
    """The receiving AIS: takes each delivered XML out of the outbox, keeping every copy it ever saw."""

    def __init__(self, outbox: Path, taken: Path) -> None:
        super().__init__(daemon=True)
        self.outbox, self.taken = outbox, taken
        self.stop = threading.Event()
        taken.mkdir(parents=True, exist_ok=True)

    def run(self) -> None:
        while not self.stop.is_set():
            for xml in sorted(self.outbox.glob("*.xml")) if self.outbox.is_dir() else []:
                n = 0
                while (self.taken / f"{xml.stem}.{n}.xml").exists():
                    n += 1
                shutil.move(xml, self.taken / f"{xml.stem}.{n}.xml")  # a second copy would get .1.xml
            time.sleep(0.02)

    def copies(self) -> list[str]:
        return sorted(p.name for p in self.taken.glob("*.xml"))


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "router.cli", "run", "-c", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).resolve().parents[1])


def test_kill_9_mid_stream_loses_and_duplicates_nothing(tmp_path: Path, backend: dict[str, str]) -> None:
    settings: dict[str, Any] = {
        **backend,
        "data_dir": str(tmp_path / "data"),
        "api": {"enabled": False},
        "processing": {"batch_size": 20, "sweep_interval_seconds": 0.5, "recovery_grace_seconds": 2.0,
                       # On RabbitMQ a worker process works beside the hub: killing the hub orphans it.
                       "worker_processes": 0 if backend["broker_url"].startswith("memory") else 1},
        "connections": {"ais": {"adapter": "filedrop", "inbox": "inbox", "settle_seconds": 0.1, "poll_interval": 0.1,
                                "encoding": "windows-1251"},
                        "region": {"adapter": "filedrop", "outbox": "outbox"}},
        "default_route": {"deliver_to": ["region"]},
    }
    config_file = tmp_path / "kurier.yaml"
    config_file.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    config = load_config(config_file)
    inbox = config.resolve_path("inbox")
    inbox.mkdir(parents=True)
    guids = {write_document(inbox, SampleDocument(sender=MUNICIPALITY, recipient=REGION,
                                                  subject=f"Документ № {i}", attachments={})).document_guid
             for i in range(DOCUMENTS)}
    ais = ConsumingAis(config.resolve_path("outbox"), tmp_path / "taken")
    ais.start()
    log = tmp_path / "hub.log"
    hub = _start(config_file, log)
    try:
        # Given a hub in the middle of a stream, When it is killed -9 (twice, at different depths)
        for threshold in (DOCUMENTS // 10, DOCUMENTS // 2):
            wait_until(lambda t=threshold: len(ais.copies()) >= t, timeout=120, what=f"{threshold} deliveries")
            hub.send_signal(signal.SIGKILL)
            hub.wait(timeout=30)
            assert len(ais.copies()) < DOCUMENTS, "the hub finished before it could be killed: raise DOCUMENTS"
            hub = _start(config_file, log)
        # Then after the restart every document arrives, and none twice
        wait_until(lambda: len(ais.copies()) >= DOCUMENTS, timeout=180, what="all documents delivered")
        time.sleep(1.5)  # give a duplicate the chance to show up
        copies = ais.copies()
        assert len(copies) == DOCUMENTS, f"duplicates: {[c for c in copies if not c.endswith('.0.xml')][:5]}"
        assert {"{" + c.split(".")[0] + "}" for c in copies} == guids
        # And the journal agrees, and the inbox is empty with every file in processed/
        journal = Journal(config.resolved_journal_url)
        wait_until(lambda: journal.count(status="delivered") == DOCUMENTS, timeout=30, what="journal says delivered")
        journal.dispose()
        # (a document a killed hub had claimed is finished by the next one from .work/: moments later)
        wait_until(lambda: len(list((inbox / "processed").iterdir())) == DOCUMENTS, timeout=60,
                   what="every inbox file in processed/")
        assert not list(inbox.glob("*.xml"))
        assert not [p for p in (inbox / ".work").iterdir() if not p.name.startswith(".")]
        assert not (inbox / "failed").exists() or not list((inbox / "failed").iterdir())
    except BaseException:
        print(log.read_text(encoding="utf-8", errors="replace")[-5000:])
        raise
    finally:
        ais.stop.set()
        if hub.poll() is None:
            hub.terminate()
            hub.wait(timeout=30)
        delete_queues(config)
