"""What the PKCS#11 and CSC key sources share: the check that precomputed digests fit their algorithm."""

from __future__ import annotations

import hashlib

__all__ = ["check_digests"]


def check_digests(digests: list[bytes], digest_algorithm: str) -> None:
    """A digest of the wrong length would be signed all the same, and the signature never verify: refuse it."""
    size = hashlib.new(digest_algorithm).digest_size
    if any(len(d) != size for d in digests):
        raise ValueError(f"sign_hashes: every {digest_algorithm} digest is {size} bytes long")
