"""Content-addressed payload store: the claim check that keeps files out of queue messages.

A file is stored once under its SHA-256 (``store/ab/cd/abcd...``), written to a temporary name,
fsynced and renamed, so a crash leaves either the whole file or nothing. Storing the same bytes twice
costs nothing and returns the same reference.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from schemas.errors import Refused
from schemas.payloads import StoredFile

__all__ = ["FileStore", "StoredFile"]

_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class FileStore:
    """The payload store (:class:`schemas.payloads.PayloadStore`) on a local or shared filesystem."""

    def __init__(self, root: Path, *, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return Path(self._path(sha256))

    def _path(self, sha256: str) -> str:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return os.path.join(self.root, sha256[:2], sha256[2:4], sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: str) -> int | None:
        try:
            return os.stat(self._path(sha256)).st_size  # on every document's intake: no Path objects
        except FileNotFoundError:
            return None

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def put_bytes(self, data: bytes) -> StoredFile:
        digest = hashlib.sha256(data).hexdigest()
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise Refused(f"file of {len(data)} bytes exceeds the limit of {self.max_bytes} bytes", code="too-large")
        if not self.exists(digest):  # the bytes are known: no need to write what is stored already
            self.put_stream(io.BytesIO(data))
        return StoredFile(digest, len(data))

    def put_stream(self, stream: BinaryIO, *, limit: int | None = None) -> StoredFile:
        """Store a stream chunk by chunk; refuse it (keeping nothing) once it passes ``limit`` bytes."""
        limit = min(x for x in (limit, self.max_bytes, 1 << 62) if x is not None)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        hasher = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise Refused(f"file exceeds the limit of {limit} bytes", code="too-large")
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = hasher.hexdigest()
            target = self.path(digest)
            if target.exists():
                os.unlink(tmp_name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, target)
            return StoredFile(digest, size)
        except BaseException as exc:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            if isinstance(exc, OSError) and exc.filename is None:
                # A failed write or fsync names no file; name it, so a full disk can be told where it is.
                raise OSError(exc.errno, exc.strerror, tmp_name) from exc
            raise

    def put_file(self, path: Path, *, limit: int | None = None) -> StoredFile:
        with open(path, "rb") as fh:
            return self.put_stream(fh, limit=limit)

    def copy_to(self, sha256: str, target: Path) -> None:
        with self.open(sha256) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
