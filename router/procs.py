"""Extra worker processes: the pipeline and delivery workers in OS processes of their own.

Python runs one core per process; on RabbitMQ the workers of several processes share the queues, so
throughput grows with processes until the broker or the database is the limit. Each child builds its
own hub from the same configuration (no connection crosses a fork) and runs workers only; sources,
the sweeper and the API stay in the parent.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import Any

from router.config import KurierConfig
from router.runtime import settle_heap

__all__ = ["spawn_hub_processes", "spawn_workers", "stop_workers"]

log = logging.getLogger("kurier.procs")

SEALER_NICE = 10  # of the sealer's process: background work, behind the documents' (see spawn_hub_processes)


def _config_data(config: KurierConfig) -> dict[str, Any]:
    data = config.model_dump(mode="json", exclude={"api", "config_file"})
    data["api"] = {"enabled": False}
    return data


def _child(data: dict[str, Any], roles: list[str], parent: int, nice: int = 0) -> None:
    from router.hub import Hub

    if nice:
        os.nice(nice)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    hub = Hub(KurierConfig(**data), with_sources=False)
    hub.start(migrate=False, roles=frozenset(roles))
    settle_heap()
    # A parent killed with -9 cannot stop its children: each notices it was orphaned and stops itself
    # (its unacknowledged messages go back to RabbitMQ for the restarted hub).
    while not stop.wait(1.0):
        if os.getppid() != parent:
            log.warning("the parent process is gone; this worker process stops")
            break
    hub.stop()


def spawn_workers(config: KurierConfig, count: int, roles: tuple[str, ...] = ("process", "deliver"),
                  name: str = "kurier-worker", nice: int = 0) -> list[BaseProcess]:
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited sockets or threads
    children: list[BaseProcess] = []
    for i in range(count):
        # The parent's pid from here, not getppid() in the child: the parent may die while the child starts.
        child = ctx.Process(target=_child, args=(_config_data(config), list(roles), os.getpid(), nice),
                            name=f"{name}-{i + 1}", daemon=True)
        child.start()
        children.append(child)
    log.info("started %d %s process(es)", count, name.removeprefix("kurier-"))
    return children


def spawn_hub_processes(config: KurierConfig, count: int) -> list[BaseProcess]:
    """``count`` worker processes and, when the journal is sealed, the sealer in a process of its own.

    The sealer reads back and hashes every evidence row: in the intake's process it took a fifth of the
    interpreter the intake needs, and in a worker's it would lengthen that worker's batches. It runs
    niced: its work may wait seconds (``seal.lag_seconds`` allows minutes), a document's should not.
    """
    children = spawn_workers(config, count)
    if config.seal.enabled:
        children += spawn_workers(config, 1, roles=("seal",), name="kurier-sealer", nice=SEALER_NICE)
    return children


def stop_workers(children: list[BaseProcess], timeout: float = 30.0) -> None:
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: the child stops its workers, unacknowledged messages go back
    for child in children:
        child.join(timeout)
        if child.is_alive():
            child.kill()
