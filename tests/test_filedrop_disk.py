"""A full disk strands no document: whatever step of a claim or of finishing it fails, once space returns
every document is delivered once or refused with a reason, and the log said "disk full", not a traceback.

Two ways: a fault injected at each step (every call by which the file drop and the payload store take
space, from the first to the last, in turn), and a real small filesystem (tmpfs) filled with ballast.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterContext
from adapters.filedrop import FiledropSource
from adapters.filedrop.errors import DiskFullLog, disk_full_error
from adapters.filedrop.testing import SampleDocument, sample_pdf, write_bad_document, write_document
from router.hub import Hub
from tests.conftest import IN_CI
from tests.helpers import hub_config, unique, wait_until
from tests.test_filedrop import Clock

_LOG = "kurier.adapters"


class FullDisk:
    """The disk holding ``root``, filling up at its k-th allocation and staying full until :meth:`free`.

    Counts the calls that take space (mkdir, open creating a file, rename, replace, write, fsync) on
    paths under ``root``; from the one :meth:`fill_at` names on, each fails as a full disk fails it.
    """

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = os.path.abspath(root) + os.sep
        self.calls = 0
        self.failed: list[str] = []  # what failed, in order
        self.errno = errno.ENOSPC
        self._full_from: int | None = None
        real = {name: getattr(os, name) for name in ("mkdir", "open", "rename", "replace", "write", "fsync")}

        def mkdir(path: Any, mode: int = 0o777, **kw: Any) -> None:
            if not os.path.lexists(path):  # an existing folder is EEXIST, full disk or not
                self._take("mkdir", path)
            real["mkdir"](path, mode, **kw)

        def open_(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
            if flags & os.O_CREAT and "dir_fd" not in kw and not os.path.lexists(path):
                self._take("create", path)
            return int(real["open"](path, flags, mode, **kw))

        def rename(src: Any, dst: Any, **kw: Any) -> None:
            self._take("rename", dst)
            real["rename"](src, dst, **kw)

        def replace(src: Any, dst: Any, **kw: Any) -> None:
            self._take("replace", dst)
            real["replace"](src, dst, **kw)

        def write(fd: int, data: Any) -> int:
            self._take("write", _fd_path(fd), named=False)  # a failed write names no file
            return int(real["write"](fd, data))

        def fsync(fd: Any) -> None:
            self._take("fsync", _fd_path(fd), named=False)
            real["fsync"](fd)

        for name, fake in (("mkdir", mkdir), ("open", open_), ("rename", rename), ("replace", replace),
                           ("write", write), ("fsync", fsync)):
            monkeypatch.setattr(os, name, fake)

    def fill_at(self, k: int) -> None:
        """The k-th allocation from now on fails, and every one after it."""
        self._full_from = self.calls + k

    def free(self) -> None:
        self._full_from = None

    def _take(self, what: str, path: Any, *, named: bool = True) -> None:
        where = os.path.abspath(os.fspath(path)) if path is not None else ""
        if not where.startswith(self.root):
            return
        self.calls += 1
        if self._full_from is not None and self.calls >= self._full_from:
            self.failed.append(f"{what} {where}")
            raise OSError(self.errno, os.strerror(self.errno), where if named else None)


def _fd_path(fd: Any) -> str | None:
    number = fd if isinstance(fd, int) else fd.fileno()
    try:
        return os.readlink(f"/proc/self/fd/{number}")
    except OSError:
        return None


def _hub(tmp_path: Path, data: Path, *, with_sources: bool = False, **options: Any) -> Hub:
    """A hub on the embedded transport: a file-drop inbox on ``data``'s disk, an outbox and journal elsewhere."""
    config = hub_config(
        tmp_path, {"broker_url": "memory://", "journal_url": f"sqlite:///{tmp_path / 'journal.sqlite3'}",
                   "queue_prefix": unique("kurier-test")},
        data_dir=str(data),
        connections={"ais": {"adapter": "filedrop", "inbox": "inbox", "settle_seconds": 0, **options},
                     "region": {"adapter": "filedrop", "outbox": str(tmp_path / "outbox"), "fsync": False}},
        default_route={"deliver_to": ["region"]},
    )
    return Hub(config, with_sources=with_sources)


def _left(inbox: Path) -> list[str]:
    """What is still waiting: XMLs in the inbox, anything in .work/ (claims too), temporaries in the store."""
    waiting = [p.name for p in inbox.glob("*.xml")] + [p.name for p in (inbox / ".work").iterdir()]
    return waiting + [p.name for p in (inbox.parent / "store" / ".tmp").iterdir()]


def _disk_records(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name.startswith(_LOG) and "is full" in r.getMessage()]


def test_a_full_disk_at_any_step_strands_no_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=_LOG)
    data = tmp_path / "data"
    hub = _hub(tmp_path, data)
    hub.start()
    config, clock = hub.config, Clock()
    inbox = config.resolve_path("inbox")
    settings = hub.connections["ais"].source.settings  # type: ignore[union-attr]

    def new_source() -> FiledropSource:  # as the hub builds its source, with a clock the test turns
        return FiledropSource("ais", settings, AdapterContext(config.data_dir, hub.store, config.limits), clock=clock)

    disk, src = FullDisk(data, monkeypatch), new_source()
    good: set[str] = set()
    refused: dict[str, str] = {}
    fired_rounds = 0
    try:
        for k in itertools.count(1):
            # Given three documents arriving: one to deliver, one unreadable, one the hub refuses
            pdf = sample_pdf(f"Заявление № {k}")  # new bytes each round: the store must take space for them
            written = write_document(inbox, SampleDocument(subject=f"Документ № {k}", attachments={f"z-{k}.pdf": pdf}))
            good.add(written.document_guid or "")
            write_bad_document(inbox, "malformed", stem=f"malformed-{k}")
            write_bad_document(inbox, "invalid-eik", stem=f"invalid-eik-{k}")
            refused.update({f"malformed-{k}": "malformed-xml", f"invalid-eik-{k}": "invalid-eik"})
            # When the disk fills at step k (ENOSPC, or EDQUOT: a quota) and stays full for three polls
            disk.errno = errno.EDQUOT if k % 3 == 0 else errno.ENOSPC
            failed_before, records_before = len(disk.failed), len(caplog.records)
            disk.fill_at(k)
            for _ in range(3):
                clock.now += 1
                src.poll_once(hub)
            fired = len(disk.failed) > failed_before
            # And space returns (every other round after a restart, which forgets what was decided)
            disk.free()
            if k % 2 == 0:
                src = new_source()
            for _ in range(10):
                clock.now += 61
                src.poll_once(hub)
                if not _left(inbox):
                    break
            # Then nothing is left waiting, and a full disk was said once, without a traceback
            assert not _left(inbox), f"step {k} ({disk.failed[failed_before:][:1]}): left {_left(inbox)}"
            said = _disk_records(caplog.records[records_before:])
            assert len(said) == (1 if fired else 0), f"step {k}: {[r.getMessage() for r in said]}"
            fired_rounds += fired
            if not fired:
                break  # k is past the last step a round takes: every step had its turn
        assert fired_rounds > 20  # (the claim, the store, the notes and the moves: each step of them)
        # And every good document is delivered exactly once, every bad one refused with its reason
        outbox = tmp_path / "outbox"
        wait_until(lambda: len(list(outbox.glob("*.xml"))) >= len(good), what="every good document delivered")
        wait_until(lambda: hub.journal.count(status="delivered") == len(good), what="the journal agrees")
        assert sorted("{" + p.stem + "}" for p in outbox.glob("*.xml")) == sorted(good)
        assert len(list((inbox / "processed").iterdir())) == len(good)
        codes = {
            note.name.removesuffix(".error.txt"): note.read_text("utf-8-sig").split("Код / Code: ")[1].split("\n")[0]
            for note in (inbox / "failed").glob("*/*.error.txt")
        }
        assert codes == refused and len(list((inbox / "failed").iterdir())) == len(refused)
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        said = _disk_records(caplog.records)
        assert all("free space and the document is retried" in r.getMessage() for r in said)
        assert any("EDQUOT" in r.getMessage() or "quota" in r.getMessage() for r in said)
    finally:
        disk.free()
        hub.stop()


def test_a_full_disk_is_said_when_met_at_intervals_while_it_lasts_and_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock, told = Clock(), logging.getLogger(f"{_LOG}.test")
    said = DiskFullLog(told, "ais", clock, every=300)
    full = disk_full_error(OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "gone" / "x.tmp")),
                           tmp_path)
    caplog.set_level(logging.INFO, logger=_LOG)
    for _ in range(300):  # a poll a second for five minutes
        said.met(full, lambda: 7)
        clock.now += 1
    said.met(full, lambda: 7)
    said.ok()
    said.ok()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert f"the disk holding {tmp_path} is full" in messages[0] and "7 document(s) waiting" in messages[0]
    assert "дискът, на който е" in messages[0] and "still, for 300s" in messages[1]
    assert "disk space is back after 300s" in messages[2]


# -- a real small filesystem -------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs with 300 inodes, mounted for the test (needs root; skipped where mounting is not allowed)."""
    where = tmp_path / "disk"
    where.mkdir()
    mount = shutil.which("mount")
    should_work = os.name == "posix" and os.geteuid() == 0 and mount is not None
    result = subprocess.run([mount or "mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=300", "tmpfs", str(where)],
                            capture_output=True, text=True) if should_work else None
    if result is None or result.returncode != 0:
        reason = result.stderr.strip() if result is not None else "not root, or no mount command"
        if IN_CI and should_work:
            pytest.fail(f"could not mount a tmpfs as root: {reason}")
        pytest.skip(f"cannot mount a small filesystem here: {reason}")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill_blocks(path: Path) -> None:
    """Write ``path`` until the disk has no block left."""
    with open(path, "wb", buffering=0) as fh:
        for size in (1 << 16, 1 << 12, 1):  # big pieces, then whatever is left, to the last page
            with contextlib.suppress(OSError):
                while fh.write(b"\0" * size):
                    pass


def _fill_inodes(folder: Path) -> None:
    """Create empty files in ``folder`` until the disk has no inode left."""
    folder.mkdir()
    for n in itertools.count():
        try:
            (folder / str(n)).touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return


def test_documents_wait_on_a_full_filesystem_and_go_when_space_returns(
    tmp_path: Path, small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=_LOG)
    hub = _hub(tmp_path, small_disk / "data", with_sources=True, poll_interval=0.05)
    inbox = hub.config.resolve_path("inbox")
    guids = {write_document(inbox, SampleDocument(subject=f"Документ № {i}",
                                                  attachments={f"скан-{i}.pdf": os.urandom(20_000)})).document_guid
             for i in range(20)}
    # Given a disk with no inode and no block left, filled while the documents were arriving
    _fill_blocks(small_disk / "ballast-blocks")
    _fill_inodes(small_disk / "ballast-inodes")
    hub.start()
    try:
        # Then nothing can be claimed, and the hub says why
        wait_until(lambda: len(_disk_records(caplog.records)) >= 1, what="'disk full' in the log")
        assert len(list(inbox.glob("*.xml"))) == 20
        # When inodes come back but no blocks: the documents are claimed, but cannot be stored
        shutil.rmtree(small_disk / "ballast-inodes")
        wait_until(lambda: not list(inbox.glob("*.xml")) and len(list((inbox / ".work").iterdir())) == 20,
                   what="every document claimed")
        assert not list((inbox / "processed").iterdir())  # (no space for a note: nothing can be finished yet)
        # And when the ballast is removed altogether
        (small_disk / "ballast-blocks").unlink()
        # Then every document is delivered once, and nothing is left behind
        outbox = tmp_path / "outbox"
        wait_until(lambda: len(list(outbox.glob("*.xml"))) >= 20, what="20 documents delivered")
        wait_until(lambda: not _left(inbox), what="the inbox empty")
        assert {"{" + p.stem + "}" for p in outbox.glob("*.xml")} == guids and len(list(outbox.glob("*.xml"))) == 20
        assert len(list((inbox / "processed").iterdir())) == 20 and not list((inbox / "failed").iterdir())
    finally:
        hub.stop()
    # And the log said "disk full" a few times, not once per poll, and never with a traceback
    assert 1 <= len(_disk_records(caplog.records)) <= 3
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith(_LOG)]
    assert any("disk space is back" in r.getMessage() for r in caplog.records)
