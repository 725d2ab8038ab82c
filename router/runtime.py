"""Process-wide settings for a long-running Kurier process."""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]


def settle_heap() -> None:
    """Take what a started process built (modules, configuration, clients) out of the garbage collector's sight.

    Python's full collections walk every live container object. In a worker process most of them are the
    imported libraries and the hub's parts, which live as long as the process: walked every few seconds,
    they made the collections pauses of 100–200 ms, the worst latencies of a document at a steady load.
    Frozen (``gc.freeze``), they are never walked; the collector still handles everything made afterwards.
    Call it once, after start-up.
    """
    gc.collect()
    gc.freeze()
