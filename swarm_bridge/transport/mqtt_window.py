"""The two QoS 1 windows of an MQTT 5 session: our PUBLISHes awaiting PUBACK, and received ones awaiting ack.

Pure bookkeeping without sockets or locks (the client holds its lock around every call), tested alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["AckOrder", "Inflight", "Pending"]

Done = Callable[[bool, int], None]
"""Called once per QoS 1 publish with (delivered, PUBACK reason code) when its PUBACK arrives."""


@dataclass
class Pending:
    """One QoS 1 PUBLISH held until its PUBACK: the encoded packet, whether it went out yet, its callback, its place
    in sending order (`seq`) and when it was last handed to the connection (`queued_at`, monotonic s)."""

    packet: bytes
    sent: bool
    on_done: Done | None
    seq: int = 0
    queued_at: float = 0.0


class Inflight:
    """Outgoing QoS 1 PUBLISHes by packet id, in sending order, at most `limit` (the broker's Receive Maximum)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending: dict[int, Pending] = {}
        self._reserved: set[int] = set()  # ids of SUBSCRIBEs awaiting their SUBACK: the same id space
        self._next_id = 1
        self._seq = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self.limit

    def next_id(self) -> int:
        """A packet id (1..65535) not in flight and not reserved."""
        while True:
            pid = self._next_id
            self._next_id = 1 if pid == 65535 else pid + 1
            if pid not in self._pending and pid not in self._reserved:
                return pid

    def reserve(self, pid: int) -> None:
        """Keep `pid` out of `next_id` (a SUBSCRIBE uses it) until `release`."""
        self._reserved.add(pid)

    def release(self, pid: int) -> None:
        self._reserved.discard(pid)

    def release_all(self) -> None:
        """The connection is gone, and with it every SUBSCRIBE awaiting a SUBACK."""
        self._reserved.clear()

    def add(self, pid: int, packet: bytes, *, sent: bool, on_done: Done | None, now: float = 0.0) -> None:
        self._seq += 1
        self._pending[pid] = Pending(packet, sent, on_done, self._seq, now)

    def oldest(self) -> tuple[int, Pending] | None:
        """The PUBLISH awaiting its PUBACK longest (first in sending order) and its packet id; None when none."""
        for item in self._pending.items():
            return item
        return None

    def acked(self, pid: int) -> Pending | None:
        """The PUBLISH a PUBACK names, removed from the window; None for an unknown id."""
        return self._pending.pop(pid, None)

    def unanswered(self, now: float, timeout_s: float, *, acked_seq: int, last_ack: float,
                   busy_at: float) -> tuple[int, float, bool] | None:
        """The PUBLISH whose PUBACK this connection will not bring, with how long it waited: the oldest, sent
        `timeout_s` ago and more (counted from when the connection last had bytes queued, `busy_at`, so a slow
        link is not mistaken), while a later one was acked (`acked_seq`: the highest seq acked) or no PUBACK at
        all came for `timeout_s` (`last_ack`); the third value says whether a later one was acked. None when nothing
        is overdue (or `timeout_s` is 0: never)."""
        oldest = self.oldest()
        if oldest is None or not timeout_s or not oldest[1].sent:
            return None
        pid, pending = oldest
        since = max(pending.queued_at, busy_at)
        if now - since < timeout_s:
            return None
        overtaken = pending.seq < acked_seq
        if overtaken or now - max(last_ack, since) >= timeout_s:
            return pid, now - pending.queued_at, overtaken
        return None

    def resend(self, now: float = 0.0) -> Iterator[tuple[bytes, bool]]:
        """Every PUBLISH still in flight, in the order first sent, with whether it went out before (-> DUP)."""
        for pending in self._pending.values():
            yield pending.packet, pending.sent
            pending.sent, pending.queued_at = True, now

    def drain(self) -> list[Pending]:
        """Everything in flight, removed (the client is closing for good)."""
        items = list(self._pending.values())
        self._pending.clear()
        return items


class AckOrder:
    """Received QoS 1 PUBLISHes in arrival order; the application acks them in any order, PUBACKs leave in order.

    MQTT 5 (4.6) requires PUBACKs in the order the PUBLISHes arrived: an ack of a later message is held until
    every earlier one is acked too.
    """

    def __init__(self) -> None:
        self._queue: deque[list[int]] = deque()  # [packet id, acked 0/1]

    def __len__(self) -> int:
        return len(self._queue)

    def received(self, pid: int) -> list[int]:
        """Record an arrival; the returned ticket is what `ack` takes."""
        ticket = [pid, 0]
        self._queue.append(ticket)
        return ticket

    def ack(self, ticket: list[int]) -> list[int]:
        """Mark one message acked; the packet ids whose PUBACK may now be sent, in order."""
        ticket[1] = 1
        return self._ready()

    def ack_many(self, tickets: list[list[int]]) -> list[int]:
        """`ack` of several messages at once: the packet ids whose PUBACK may now be sent, in order."""
        for ticket in tickets:
            ticket[1] = 1
        return self._ready()

    def _ready(self) -> list[int]:
        """The acked messages at the head of the arrival order, taken off it: their packet ids."""
        ready = []
        queue = self._queue
        while queue and queue[0][1]:
            ready.append(queue.popleft()[0])
        return ready

    def clear(self) -> None:
        """A new connection: the broker redelivers whatever was not acked, with new tickets."""
        self._queue.clear()
