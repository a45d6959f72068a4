"""The robot's bandwidth budget at work: routes hand their messages to it instead of the outbox; records of
control and state priorities are made and go on at once, the others wait unmade in the budget's lanes and are made
(encoded, compressed, split) by the pacing thread only when they are about to leave, outside this object's lock, so
a superseded image costs nothing but its take and making a large record never holds up a kept one. Drops are
counted on their route; the budget's state changes are logged once each. The outbox's spool drains within the same
budget (`DrainPace`): records are handed to the outbox outside this object's lock, because the outbox asks the
budget with its own lock held."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from swarm_bridge.codec.chunks import is_chunk
from swarm_bridge.config.robot import BudgetConfig
from swarm_bridge.ros.ros_to_uplink import Taken
from swarm_bridge.routing import Route
from swarm_bridge.routing.budget import Budget, Parcel
from swarm_bridge.transport.outbox import Outbox

__all__ = ["UplinkBudget"]

log = logging.getLogger(__name__)

_TICK_S = 0.05  # the pacer looks at least this often (expiry, a budget raised at run time)
# The budget counts as keeping up again only after this long without a drop: under a steady overload the lanes
# empty between two images, and a line each time flooded the log (two a second, 80 KB in a 10-minute soak).
CALM_S = 10.0

# One part as the outbox takes it: (route, key, payload, received_ns).
_Part = tuple[Route, bytes, bytes, int]


class UplinkBudget:
    """A `RecordSink` (ros_to_uplink) in front of the outbox that keeps the uplink within `bytes_per_s`."""

    def __init__(self, config: BudgetConfig, outbox: Outbox, *,
                 on_drop: Callable[[str, str, int], None]) -> None:
        """`on_drop(stream, reason, count)`: count records the budget dropped on their route."""
        self.budget: Budget[_Part] = Budget(config.bytes_per_s, config.burst, keep_priority=config.keep_priority,
                                            max_wait_s=config.max_wait_s, queue_bytes=config.queue_bytes)
        self._outbox = outbox
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._short_logged = False
        self._short_at = 0.0  # monotonic time of the last drop
        self._thread = threading.Thread(target=self._pace, name="uplink-budget", daemon=True)
        self._thread.start()
        log.info("budget: %s per second (burst %d bytes); priority %d and above never held back",
                 _rate(config.bytes_per_s), config.burst, config.keep_priority)

    def __call__(self, route: Route, key: bytes, taken: Taken) -> None:
        now = time.monotonic()
        if self.budget.keeps(route.priority):
            items = _items(route, key, taken)
            if items is None:
                return
            with self._lock:
                self.budget.spend(sum(len(item[2]) for item in items), now)
            for item in items:
                self._submit(item)
            return
        rest = taken.size - taken.first
        parcel: Parcel[_Part] = Parcel(route.stream, route.priority, [], [taken.first, *([rest] if rest > 0 else [])],
                                       now, make=lambda: _made(_items(route, key, taken)))
        with self._lock:
            self._dropped(self.budget.offer(parcel, now))
        self._wake.set()

    def allowance(self) -> tuple[float, int, int]:
        """`DrainPace`: the tokens now, the bucket's depth and the kept priority, for the spool's drain."""
        with self._lock:
            budget = self.budget
            return budget.tokens(time.monotonic()), budget.burst, budget.keep_priority

    def spend_drained(self, size: int) -> None:
        """`DrainPace`: bytes the outbox took from the spool come out of the same bucket as live records."""
        with self._lock:
            self.budget.spend(size, time.monotonic())

    def refund(self, size: int) -> None:
        """`DrainPace`: live records the outbox spooled instead of sending are charged when drained, not twice."""
        with self._lock:
            self.budget.refund(size, time.monotonic())

    def set_rate(self, bytes_per_s: float) -> None:
        """A new budget at run time (the node's budget_bytes_per_s parameter); the bucket depth stays."""
        with self._lock:
            old = self.budget.bytes_per_s
            self.budget.set_rate(bytes_per_s, now=time.monotonic())
        log.info("budget: changed from %s to %s per second", _rate(old), _rate(bytes_per_s))
        self._wake.set()

    def close(self) -> None:
        """Stop pacing; what still waits is handed to the outbox (spooled, not lost)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        with self._lock:
            waiting = self.budget.drain()
        for parcel in waiting:
            made = parcel.make() if parcel.make is not None else (parcel.parts, parcel.sizes)
            for item in made[0][parcel.sent:] if made is not None else []:
                self._submit(item)

    def _pace(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                now = time.monotonic()
                self._dropped(self.budget.expire(now))
                ready = [item for _parcel, item in self.budget.release(now)]
                making = self.budget.to_make(now)
                wait = min(_TICK_S, self.budget.wait_s(now))
                self._state(now)
            for item in ready:
                self._submit(item)
            if making is not None and making.make is not None:
                made = making.make()  # outside the lock: kept records pass meanwhile
                with self._lock:
                    self.budget.made(making, made)
                continue  # its first part may leave at once
            self._wake.wait(max(wait, 0.001))
            self._wake.clear()

    def _submit(self, item: _Part) -> None:
        route, key, payload, received_ns = item
        self._outbox.submit(route.stream, route.destination, key, payload, priority=route.priority,
                            qos=route.mqtt_qos, retain=route.retain and not is_chunk(payload),
                            received_ns=received_ns)

    def _dropped(self, parcels: list[Parcel[_Part]]) -> None:
        for parcel in parcels:
            self._on_drop(parcel.stream, parcel.dropped or "budget", 1)

    def _state(self, now: float) -> None:
        """One log line when the budget starts dropping lower-priority records, one when it keeps up again: nothing
        waits and nothing was dropped for CALM_S."""
        if self.budget.short:
            self.budget.short = False
            self._short_at = now
            if not self._short_logged:
                self._short_logged = True
                log.warning("budget: short (%s per second); lower-priority records are decimated or dropped, "
                            "counted per route (%d bytes waiting)", _rate(self.budget.bytes_per_s),
                            self.budget.queued)
        elif self._short_logged and now - self._short_at >= CALM_S and self.budget.kept_up():
            self._short_logged = False
            log.info("budget: keeps up again (%s per second)", _rate(self.budget.bytes_per_s))


def _items(route: Route, key: bytes, taken: Taken) -> list[_Part] | None:
    """The message's record made, as the outbox takes its parts (latency measured on the last part); None: it could
    not be made (counted on its route)."""
    parts = taken.make()
    if parts is None:
        return None
    last = len(parts) - 1
    return [(route, key, part, taken.received_ns if index == last else 0) for index, part in enumerate(parts)]


def _made(items: list[_Part] | None) -> tuple[list[_Part], list[int]] | None:
    return None if items is None else (items, [len(item[2]) for item in items])


def _rate(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e6:.3g} MB ({bytes_per_s * 8 / 1e6:.3g} Mbit)"
