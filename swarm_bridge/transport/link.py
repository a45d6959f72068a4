"""What every uplink offers the bridge: send bytes to a destination, count acks and failures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["Done", "Inbound", "LinkBusy", "LinkError", "LinkSettingError", "LinkStats", "Uplink"]

Done = Callable[[bool], None]
"""Called once per record with True when the broker confirmed it, False when it failed for good.
Called from the client library's thread: it must not block or take locks held around `send`."""


class LinkError(SwarmBridgeError, ConnectionError):
    """An uplink that cannot be reached or used; names the endpoint and the fix."""

    def __init__(self, endpoint: str, problem: str, fix: str) -> None:
        self.endpoint = endpoint
        self.problem = problem
        self.fix = fix
        super().__init__(f"{endpoint}: {problem}. Fix: {fix}")


class LinkSettingError(SwarmBridgeError, ValueError):
    """A link option or call argument out of range (or one the broker does not support), refused before anything
    is sent; `where` names the link (endpoint, client id), `problem` the option and value, `fix` what to give."""

    def __init__(self, where: str, problem: str, fix: str) -> None:
        self.where, self.problem, self.fix = where, problem, fix
        super().__init__(f"{where}: {problem}. Fix: {fix}")


Inbound = Callable[..., None]
"""Called with (topic, key or None, payload) for each record arriving on a subscription, from the client
library's thread, and with the record's properties as a fourth argument (MQTT 5 user properties, Kafka headers
as (name, text) pairs) when subscribed `with_properties=True`; it must not raise (the link logs and counts
anything that escapes)."""


class LinkBusy(SwarmBridgeError, RuntimeError):
    """The link cannot take another record right now (its own queue is full); try again later."""


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
    """An MQTT or Kafka link as the bridge sees it.

    `connected` says whether sending makes sense now; `on_inflight_lost`, when set, is called (from the
    library's thread) when records sent but not yet confirmed will never be confirmed on this connection.
    """

    stats: LinkStats
    endpoint: str
    on_inflight_lost: Callable[[], None] | None
    served: bool  # True when `on_done` comes only from `service()` (records in flight need it called)

    @property
    def connected(self) -> bool: ...

    def connect(self, *, require: bool = True) -> None: ...

    def send(self, destination: str, key: bytes, payload: bytes, *, qos: int = 1, retain: bool | None = None,
             on_done: Done | None = None) -> None:
        """Hand one record to the broker; `qos` and `retain` are MQTT's (retain None: as `describe` said)."""

    def describe(self, destination: str, *, content_type: str, user_properties: tuple[tuple[str, str], ...] = (),
                 retain: bool = False) -> None: ...

    def subscribe(self, destination: str, on_record: Inbound, *, with_properties: bool = False) -> None: ...

    def service(self) -> None: ...

    def flush(self, timeout: float) -> int: ...

    def close(self) -> None: ...
