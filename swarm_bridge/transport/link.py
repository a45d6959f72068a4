"""What every uplink offers the bridge: send bytes to a destination, count acks and failures."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["LinkError", "LinkStats", "Uplink"]


class LinkError(ConnectionError):
    """An uplink that cannot be reached or used; names the endpoint and the fix."""

    def __init__(self, endpoint: str, problem: str, fix: str) -> None:
        self.endpoint = endpoint
        self.problem = problem
        self.fix = fix
        super().__init__(f"{endpoint}: {problem}. Fix: {fix}")


@dataclass
class LinkStats:
    """Counts of one link, safe to update from the client library's threads."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, sent: int = 0, acked: int = 0, failed: int = 0) -> None:
        with self._lock:
            self.sent += sent
            self.acked += acked
            self.failed += failed

    @property
    def pending(self) -> int:
        return self.sent - self.acked - self.failed


class Uplink(Protocol):
    """An MQTT or Kafka link as the bridge sees it."""

    stats: LinkStats

    def connect(self) -> None: ...

    def send(self, destination: str, key: bytes, payload: bytes, *, qos: int = 1) -> None: ...

    def flush(self, timeout: float) -> int: ...

    def close(self) -> None: ...
