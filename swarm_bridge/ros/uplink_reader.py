"""One thread that reads every up route's DDS reader itself, not through the executor: it waits on all of them in one
rcl wait set (the GIL released meanwhile), and takes from each ready reader all it holds, in bursts that its route
encodes and hands to the outbox in one call, which writes them to the socket (`UplinkRoute.drain`).

Why: through the executor each message cost an event, a GIL hand-over and Python attribute lookups, and the route's
work ran on the thread that also serves timers, parameters and the down routes. The executor's own events for these
readers do not exist (their subscriptions are not the node's); the robot bridge's sweep timer still reads each
reader's lost-sample count, and takes its messages only while this thread is not `reading` (stopped or stuck):
a sweep that took them while it ran sent them one by one on the slow path, up to 10,000 at a time, with this
thread waiting for the route's lock (seen in a profile at 20,000 msgs/s: a quarter of the bridge's samples)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

__all__ = ["UplinkReader"]

log = logging.getLogger(__name__)

WAIT_NS = 500_000_000  # the longest wait without news: how late a stop is seen at worst (a guard wakes it at once)
STALE_NS = 4 * WAIT_NS  # a reader whose last turn is older than this is stuck: the sweep takes its routes' messages


class Drained(Protocol):
    """A route as the reader sees it: its subscription's handle, and a drain of what its reader holds."""

    @property
    def subscription_handle(self) -> Any: ...

    def drain(self) -> int: ...


class UplinkReader:
    """Waits on the readers of the routes given to `add` and drains each ready one, from `start()` to `close()`."""

    def __init__(self, context: Any) -> None:
        """`context`: the rclpy context of the node whose routes it reads."""
        self._context = context
        self._routes: list[Drained] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._changed = True
        self._turn_ns = 0  # time.monotonic_ns() of the thread's last turn (0: not started)
        with context.handle:
            self._guard = _rclpy.GuardCondition(context.handle)  # wakes the wait: a route added, a stop
        self._thread = threading.Thread(target=self._run, name="uplink-reader", daemon=True)

    def start(self) -> None:
        """Start reading (routes added before and after)."""
        self._thread.start()

    @property
    def reading(self) -> bool:
        """Whether the thread is reading (alive, and its last turn recent): then the routes' messages are its own, and
        a sweep that took them would send them on its slow per-message path while the thread waited for it."""
        return self._thread.is_alive() and time.monotonic_ns() - self._turn_ns < STALE_NS

    def add(self, route: Drained) -> None:
        """Read this route's reader from now on."""
        with self._lock:
            self._routes.append(route)
            self._changed = True
        self._guard.trigger_guard_condition()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop reading (what is left in the readers stays there, for a last sweep)."""
        self._stop.set()
        try:
            self._guard.trigger_guard_condition()
        except Exception:  # the context is gone already: the wait ends by itself
            log.debug("uplink reader: could not wake the wait", exc_info=True)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self._read()
        except Exception:  # a context shut down under it (a signal) ends it; anything else is logged
            if self._stop.is_set() or not self._context.ok():
                return
            log.exception("uplink reader stopped; the sweep timer takes the routes' messages from now on")

    def _read(self) -> None:
        routes: list[Drained] = []
        wait_set = None
        while not self._stop.is_set():
            self._turn_ns = time.monotonic_ns()
            if self._changed:
                with self._lock:
                    routes, self._changed = list(self._routes), False
                with self._context.handle:
                    wait_set = _rclpy.WaitSet(len(routes), 1, 0, 0, 0, 0, self._context.handle)
            assert wait_set is not None
            wait_set.clear_entities()
            for route in routes:
                wait_set.add_subscription(route.subscription_handle)
            wait_set.add_guard_condition(self._guard)
            wait_set.wait(WAIT_NS)
            for index, route in enumerate(routes):
                if wait_set.is_ready("subscription", index):
                    try:
                        route.drain()
                    except Exception:  # one bad route must not stop the others
                        log.exception("%s: draining its reader failed", route)
