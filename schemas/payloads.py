"""The payload store's interface: the claim check that keeps files out of queue messages.

Every package reads and writes documents' files through this protocol; the hub hands adapters and
signers its implementation (``router.store.FileStore``) in their context, so none of them imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["PayloadStore", "StoredFile"]


class StoredFile:
    """A stored file's reference: its SHA-256 and size."""

    __slots__ = ("sha256", "size")

    def __init__(self, sha256: str, size: int) -> None:
        self.sha256 = sha256
        self.size = size

    def __repr__(self) -> str:
        return f"StoredFile({self.sha256[:12]}…, {self.size} B)"


class PayloadStore(Protocol):
    """Files by SHA-256, written whole or not at all, streamed in bounded memory."""

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int | None:
        """The stored file's size in bytes, or None when it is not stored."""
        ...

    def open(self, sha256: str) -> BinaryIO: ...

    def read_bytes(self, sha256: str) -> bytes: ...

    def put_bytes(self, data: bytes) -> StoredFile: ...

    def put_stream(self, stream: BinaryIO, *, limit: int | None = None) -> StoredFile:
        """Store a stream; raise :class:`~schemas.errors.Refused` (keeping nothing) past ``limit`` bytes."""
        ...

    def put_file(self, path: Path, *, limit: int | None = None) -> StoredFile: ...

    def copy_to(self, sha256: str, target: Path) -> None: ...
