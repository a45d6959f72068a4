"""Between a robot's routes and its uplink: send live when the link can take it, spool when it cannot,
drain the spool in order when it can again. Nothing is acknowledged or forgotten before the broker has it.

Threads: routes call `submit` (the ROS thread); link callbacks only enqueue events (never take the
outbox lock, so no lock order with the client library's own locks); the pump thread handles events,
drains the spool and services the link. Order holds because a link delivers in the order it was handed
records and fails a suffix of them (a dropped connection, a timed-out queue): failed records go back
to the spool under their original order numbers and drain before anything newer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from swarm_bridge.spool import Spool
from swarm_bridge.transport.link import LinkBusy, Uplink

__all__ = ["Outbox", "OutboxStats", "Outgoing"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    """One encoded record on its way up; `order` is its place in the robot's submission order."""

    stream: str
    destination: str
    key: bytes
    payload: bytes
    priority: int
    qos: int
    order: int
    received_ns: int  # time.monotonic_ns() when the route got it; 0 when it came back from the spool


@dataclass
class OutboxStats:
    """Counts since start: submitted, sent directly, spooled, acknowledged, failed deliveries (re-spooled)."""

    submitted: int = 0
    sent_live: int = 0
    spooled: int = 0
    sent_from_spool: int = 0
    acked: int = 0
    failed: int = 0


class Outbox:
    """At-least-once, in order per stream, bounded in memory (`window` in flight), durable beyond it."""

    def __init__(self, link: Uplink, spool: Spool, *, window: int = 1000, batch: int = 200,
                 on_acked: Callable[[Outgoing, int], None] | None = None) -> None:
        if window <= 0 or batch <= 0:
            raise ValueError(f"window and batch must be > 0 (got window={window}, batch={batch})")
        self.link, self.spool = link, spool
        self.window, self.batch = window, batch
        self.stats = OutboxStats()
        self._on_acked = on_acked
        self._order = spool.next_order
        self._lock = threading.Lock()
        self._inflight: dict[int, tuple[Outgoing, int | None]] = {}  # token -> (record, spool id or None)
        self._staged: list[Outgoing] = []  # on their way to the spool; the ROS thread never waits on SQLite
        self._token = 0
        self._events: queue.SimpleQueue[tuple[str, int, bool, int]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        link.on_inflight_lost = lambda: self._events.put(("lost", 0, False, 0))
        self._thread = threading.Thread(target=self._pump_loop, name="outbox-pump", daemon=True)
        self._thread.start()

    def submit(self, stream: str, destination: str, key: bytes, payload: bytes, *, priority: int, qos: int,
               received_ns: int) -> None:
        """Take one record: straight to the link when nothing is queued before it, else to the spool."""
        with self._lock:
            record = Outgoing(stream, destination, key, payload, priority, qos, self._order, received_ns)
            self._order += 1
            self.stats.submitted += 1
            if (self.link.connected and not self._staged and self.spool.depth() == 0
                    and len(self._inflight) < self.window):
                try:
                    self._send(record, None)
                    self.stats.sent_live += 1
                    return
                except LinkBusy:
                    pass
            self._staged.append(record)  # the pump writes it to the spool with others, in one transaction
        self._wake.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def backlog(self) -> int:
        """Records not yet acknowledged: in flight, staged and spooled."""
        return len(self._inflight) + len(self._staged) + self.spool.depth()

    def flush(self, timeout_s: float) -> int:
        """Wait until everything submitted is acknowledged or `timeout_s` passes; returns what remains."""
        deadline = time.monotonic() + timeout_s
        while self.backlog() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)
        return self.backlog()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the pump; what is still in flight goes back to the spool for the next start."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        with self._lock:
            self._write_staged()
            self._respool_inflight()

    def _send(self, record: Outgoing, spool_id: int | None) -> None:
        self._token += 1
        token = self._token
        self._inflight[token] = (record, spool_id)
        events = self._events

        def done(ok: bool) -> None:
            events.put(("done", token, ok, time.monotonic_ns()))

        try:
            self.link.send(record.destination, record.key, record.payload, qos=record.qos, on_done=done)
        except BaseException:
            del self._inflight[token]
            raise

    def _spool(self, record: Outgoing) -> None:
        if self.spool.put(record.stream, record.destination, record.key, record.payload,
                          priority=record.priority, order=record.order):
            self.stats.spooled += 1

    def _write_staged(self) -> None:
        if self._staged:
            self.stats.spooled += self.spool.put_many(
                (r.stream, r.destination, r.key, r.payload, r.priority, r.order) for r in self._staged)
            self._staged.clear()

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.01)
            self._wake.clear()
            try:
                busy = self.pump()
            except Exception:  # a pump that dies silently would lose the robot's data: log and go on
                log.exception("outbox pump failed; retrying")
                time.sleep(0.1)
                busy = False
            if busy:
                time.sleep(0.0005)  # let routes take the lock and the GIL between batches while draining

    def pump(self) -> bool:
        """Handle acknowledgements and lost connections, then move one batch of spooled records to the link;
        True if more is waiting. Under the lock, so events are handled one at a time, in arrival order."""
        with self._lock:
            self.link.service()
            acked: list[int] = []
            while True:
                try:
                    kind, token, ok, when_ns = self._events.get_nowait()
                except queue.Empty:
                    break
                if kind == "lost":
                    self._forget(acked)
                    self._respool_inflight()
                else:
                    self._done(token, ok, when_ns, acked)
            self._forget(acked)
            self._write_staged()
            room = self.window - len(self._inflight)
            if not self.link.connected or room <= 0:
                return False
            records = self.spool.take(min(self.batch, room))
            for index, spooled in enumerate(records):
                record = Outgoing(spooled.stream, spooled.destination, spooled.key, spooled.payload,
                                  spooled.priority, 1, spooled.order, 0)
                try:
                    self._send(record, spooled.id)
                    self.stats.sent_from_spool += 1
                except LinkBusy:
                    self.spool.release([r.id for r in records[index:]])
                    return False
            return len(records) == min(self.batch, room)

    def _forget(self, spool_ids: list[int]) -> None:
        """Acknowledged spooled records leave the spool, in one transaction per batch."""
        if spool_ids:
            self.spool.ack(spool_ids)
            spool_ids.clear()

    def _done(self, token: int, ok: bool, when_ns: int, acked: list[int]) -> None:
        entry = self._inflight.pop(token, None)
        if entry is None:
            return  # already given back to the spool after a lost connection: it will be sent again
        record, spool_id = entry
        if ok:
            self.stats.acked += 1
            if spool_id is not None:
                acked.append(spool_id)
            if self._on_acked is not None and record.received_ns:
                self._on_acked(record, when_ns)
            return
        self.stats.failed += 1
        if spool_id is not None:
            self.spool.release([spool_id])
        else:
            self._spool(record)

    def _respool_inflight(self) -> None:
        """Everything in flight is the outbox's again: spooled ones are released, live ones spooled."""
        if not self._inflight:
            return
        released = [sid for _r, sid in self._inflight.values() if sid is not None]
        self.spool.release(released)
        for record, spool_id in self._inflight.values():
            if spool_id is None:
                self._spool(record)
        log.info("%s: connection lost with %d records in flight; they go out again from the spool",
                 getattr(self.link, "endpoint", "uplink"), len(self._inflight))
        self._inflight.clear()
