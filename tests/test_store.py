"""The payload store: content addressed, stored once, atomic, and refusing files over the limit."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from router.store import FileStore as PayloadStore
from schemas.errors import Refused
from schemas.payloads import StoredFile

MiB = 1024 * 1024
PDF = b"%PDF-1.7\n" + "Заповед за командировка".encode() + bytes(range(256)) * 64


def stored_files(root: Path) -> list[Path]:
    """Every file in the store proper (not its temporary area)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.relative_to(root).parts)


def leftovers(root: Path) -> list[Path]:
    return list((root / ".tmp").iterdir())


def put_via_bytes(store: PayloadStore, data: bytes, tmp_path: Path) -> StoredFile:
    return store.put_bytes(data)


def put_via_stream(store: PayloadStore, data: bytes, tmp_path: Path) -> StoredFile:
    return store.put_stream(io.BytesIO(data))


def put_via_file(store: PayloadStore, data: bytes, tmp_path: Path) -> StoredFile:
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    return store.put_file(source)


PUTS = [pytest.param(f, id=f.__name__.removeprefix("put_via_")) for f in (put_via_bytes, put_via_stream, put_via_file)]
Put = Callable[[PayloadStore, bytes, Path], StoredFile]


@pytest.mark.parametrize("put", PUTS)
def test_files_are_addressed_by_sha256(tmp_path: Path, put: Put) -> None:
    store = PayloadStore(tmp_path / "store")
    ref = put(store, PDF, tmp_path)
    digest = hashlib.sha256(PDF).hexdigest()
    assert (ref.sha256, ref.size) == (digest, len(PDF))
    assert store.path(digest) == tmp_path / "store" / digest[:2] / digest[2:4] / digest
    assert store.exists(digest)
    assert store.read_bytes(digest) == PDF
    with store.open(digest) as fh:
        assert fh.read() == PDF
    assert leftovers(tmp_path / "store") == []


def test_the_same_bytes_are_stored_once_whichever_way_they_come(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path / "store")
    refs = [put(store, PDF, tmp_path) for put in (put_via_bytes, put_via_stream, put_via_file, put_via_bytes)]
    assert {r.sha256 for r in refs} == {hashlib.sha256(PDF).hexdigest()}
    assert len(stored_files(tmp_path / "store")) == 1
    assert leftovers(tmp_path / "store") == []


def test_different_bytes_are_different_files(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path / "store")
    a, b = store.put_bytes(b"one"), store.put_bytes(b"two")
    assert a.sha256 != b.sha256
    assert (store.read_bytes(a.sha256), store.read_bytes(b.sha256)) == (b"one", b"two")


def test_an_empty_file_is_a_file(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path / "store")
    ref = store.put_stream(io.BytesIO(b""))
    assert ref.size == 0 and store.read_bytes(ref.sha256) == b""


def test_a_stream_larger_than_a_chunk_is_stored_whole(tmp_path: Path) -> None:
    data = bytes(range(256)) * (3 * MiB // 256) + b"tail"
    ref = PayloadStore(tmp_path / "store").put_stream(io.BytesIO(data))
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "store" / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256).read_bytes() == data


@pytest.mark.parametrize("put", PUTS)
@pytest.mark.parametrize("size", [101, 3 * MiB], ids=["just-over", "several-chunks"])
def test_over_the_limit_is_refused_and_nothing_is_kept(tmp_path: Path, put: Put, size: int) -> None:
    limit = 100 if size == 101 else 2 * MiB  # several-chunks: refused after a chunk was already written
    store = PayloadStore(tmp_path / "store", max_bytes=limit)
    data = b"x" * size
    with pytest.raises(Refused) as err:
        put(store, data, tmp_path)
    assert err.value.code == "too-large"
    assert str(limit) in str(err.value)
    assert not store.exists(hashlib.sha256(data).hexdigest())
    assert stored_files(tmp_path / "store") == []
    assert leftovers(tmp_path / "store") == []


@pytest.mark.parametrize("put", PUTS)
def test_exactly_the_limit_is_accepted(tmp_path: Path, put: Put) -> None:
    store = PayloadStore(tmp_path / "store", max_bytes=100)
    assert put(store, b"y" * 100, tmp_path).size == 100


def test_a_per_call_limit_is_stricter_than_the_store_limit(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path / "store", max_bytes=1000)
    source = tmp_path / "big.xml"
    source.write_bytes(b"z" * 500)
    with pytest.raises(Refused, match="limit of 400 bytes"):
        store.put_file(source, limit=400)
    with pytest.raises(Refused, match="limit of 1000 bytes"):
        store.put_stream(io.BytesIO(b"z" * 1001), limit=5000)  # a looser call limit cannot lift the store's
    assert stored_files(tmp_path / "store") == []


def test_a_refused_stream_leaves_an_earlier_copy_intact(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path / "store", max_bytes=100)
    ref = store.put_bytes(b"a" * 100)
    with pytest.raises(Refused):
        store.put_stream(io.BytesIO(b"a" * 100 + b"more"))
    assert store.read_bytes(ref.sha256) == b"a" * 100


def test_copy_to_delivers_the_same_bytes(tmp_path: Path) -> None:
    store = PayloadStore(tmp_path / "store")
    ref = store.put_bytes(PDF)
    target = tmp_path / "outbox" / "заповед.pdf"
    target.parent.mkdir()
    store.copy_to(ref.sha256, target)
    assert target.read_bytes() == PDF
    assert store.exists(ref.sha256)  # a copy, the store keeps its own


@pytest.mark.parametrize(
    "reference", ["", "../../etc/passwd", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61]
)
def test_a_reference_that_is_not_a_digest_cannot_reach_outside(tmp_path: Path, reference: str) -> None:
    store = PayloadStore(tmp_path / "store")
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.read_bytes(reference)
