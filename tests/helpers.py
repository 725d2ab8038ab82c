"""Small helpers shared by the tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from router.config import KurierConfig, load_config
from schemas.envelope import Envelope, Party
from schemas.identifiers import new_guid

MUNICIPALITY = Party(eik="000695235", name="Община Видин")
REGION = Party(eik="121759222", name="Областна администрация Видин")
OTHER = Party(eik="831902088", name="Община Враца")


class Clock:
    """A monotonic clock a test moves by hand (``clock.now += 30``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def hub_config(tmp_path: Path, backend: dict[str, str], **overrides: Any) -> KurierConfig:
    settings: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "processing": {"sweep_interval_seconds": 0.2, "recovery_grace_seconds": 1.0, "batch_wait_ms": 5},
        "retry": {"first_delay_seconds": 0.2, "max_delay_seconds": 0.5, "in_process_attempts": 1},
        "api": {"enabled": False},
        **backend,
    }
    settings.update(overrides)
    return load_config(None, **settings)


def envelope(recipient: Party = REGION, sender: Party = MUNICIPALITY, **fields: Any) -> Envelope:
    data: dict[str, Any] = {"document_guid": new_guid(), "source": "ais", "sender": sender, "recipient": recipient,
                            "kind": "Заповед", "subject": "Заповед за командировка",
                            "reg_number": "ОА-01-123/15.12.2025"}
    data.update(fields)
    return Envelope(**data)


def delete_queues(config: KurierConfig) -> None:
    """Remove a test's queues from a real broker (they are durable and would outlive the test)."""
    if config.broker_url.startswith("memory"):
        return
    from router.queues import Broker, Topology

    Broker(config.broker_url, Topology(config.queue_prefix, config.connections)).delete()
