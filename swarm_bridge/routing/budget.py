"""A robot's uplink bandwidth budget, pure: a token bucket over the bytes sent, shared by routes by priority.

Records of routes at or above `keep_priority` (control, state) pass at once and spend tokens, the bucket going
into debt if need be; the others wait in one lane per priority and leave part by part (a chunk at a time) while
tokens last, the highest priority first, so a small record of a higher priority that arrives behind a large one
leaves before the large one's remaining chunks. When the budget is short the lower priorities give way first:
a waiting record of a stream is superseded by its stream's newer one (decimation), one that waited longer than
`max_wait_s` is dropped, and beyond `queue_bytes` the lowest priority's oldest is dropped. A record whose first
part left is never dropped (its reader would only count it lost). A record may wait unmade (`Parcel.make`: its
sizes are estimates): it is made (encoded, compressed, split) only when it is next to leave and the tokens cover its
estimated first part, so the records the budget drops cost nothing but their wait. No clocks or threads of its own:
callers pass `now` (seconds, monotonic).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from swarm_bridge.routing.errors import RouteError

__all__ = ["QUEUE_FULL", "SUPERSEDED", "TOO_LATE", "Budget", "Parcel"]

SUPERSEDED = "budget: superseded by a newer record"
TOO_LATE = "budget: waited too long"
QUEUE_FULL = "budget: queue full"

P = TypeVar("P")


@dataclass
class Parcel(Generic[P]):
    """One record on its way: its stream, priority, parts (one, or its chunks; `P` is what the caller sends per
    part) and their sizes; `sent` counts the parts already released. With `make`, the record is not made yet:
    `parts` is empty and `sizes` are estimates (the first part's, then the rest) until `Budget.made`."""

    stream: str
    priority: int
    parts: list[P]
    sizes: list[int]
    arrived: float
    sent: int = 0
    dropped: str | None = None  # the reason, once the budget dropped it
    make: Callable[[], tuple[list[P], list[int]] | None] | None = None  # (parts, sizes); None: could not be made
    making: bool = False  # handed out to be made: never dropped from then on

    @property
    def waiting_bytes(self) -> int:
        return sum(self.sizes[self.sent:])

    @property
    def droppable(self) -> bool:
        """Nothing of it left and no work spent on it: superseding, expiry and a full queue may drop it."""
        return self.sent == 0 and not self.making


@dataclass
class Budget(Generic[P]):
    """The bucket (`bytes_per_s`, depth `burst`) and the lanes below `keep_priority`; `drops` counts dropped
    records by (stream, reason), `short` says whether the budget dropped anything since it last kept up."""

    bytes_per_s: float
    burst: int
    keep_priority: int = 5
    max_wait_s: float = 2.0
    queue_bytes: int = 32 << 20
    drops: Counter[tuple[str, str]] = field(default_factory=Counter)
    short: bool = False
    spent: int = 0  # bytes released since start
    _tokens: float = -1.0
    _at: float | None = None
    _lanes: dict[int, list[Parcel[P]]] = field(default_factory=dict)
    _queued: int = 0

    def __post_init__(self) -> None:
        self._check(self.bytes_per_s, self.burst)
        self._tokens = float(self.burst)

    @staticmethod
    def _check(bytes_per_s: float, burst: int) -> None:
        if not bytes_per_s > 0 or burst <= 0:
            raise RouteError(f"budget bytes_per_s and burst must be > 0 (got {bytes_per_s}, {burst})",
                             "give budget.bytes_per_s > 0 (e.g. 6250000 for 50 Mbit/s)")

    def set_rate(self, bytes_per_s: float, burst: int | None = None, *, now: float) -> None:
        """A new budget from now on (run time); tokens kept up to the new depth."""
        self._refill(now)
        burst = burst if burst is not None else self.burst
        self._check(bytes_per_s, burst)
        self.bytes_per_s, self.burst = bytes_per_s, burst
        self._tokens = min(self._tokens, float(burst))

    def tokens(self, now: float) -> float:
        """Bytes that may leave now (negative: the bucket is in debt)."""
        self._refill(now)
        return self._tokens

    def keeps(self, priority: int) -> bool:
        """Whether records of `priority` pass at once (control, state)."""
        return priority >= self.keep_priority

    def spend(self, size: int, now: float) -> None:
        """A record that passed at once: its bytes come out of the bucket (which may go into debt)."""
        self._refill(now)
        self._tokens = max(self._tokens - size, -float(self.burst))
        self.spent += size

    def refund(self, size: int, now: float) -> None:
        """Bytes charged for records that did not leave after all (they will be charged when they do): back into
        the bucket, up to its depth."""
        self._refill(now)
        self._tokens = min(self._tokens + size, float(self.burst))
        self.spent -= size

    def offer(self, parcel: Parcel[P], now: float) -> list[Parcel[P]]:
        """Queue a record of a lower priority; returns the records dropped to make way (counted)."""
        dropped: list[Parcel[P]] = []
        lane = self._lanes.setdefault(parcel.priority, [])
        for older in [p for p in lane if p.stream == parcel.stream and p.droppable]:
            dropped.append(self._drop(lane, older, SUPERSEDED))  # decimation: the stream's newest waits instead
        lane.append(parcel)
        self._queued += parcel.waiting_bytes
        while self._queued > self.queue_bytes:
            victim = self._lowest_oldest(but=parcel)
            if victim is None or victim.priority > parcel.priority:  # never a higher priority for a lower one
                dropped.append(self._drop(lane, parcel, QUEUE_FULL))
                break
            dropped.append(self._drop(self._lanes[victim.priority], victim, QUEUE_FULL))
        return dropped

    def release(self, now: float) -> Iterator[tuple[Parcel[P], P]]:
        """The parts that may leave now, one at a time, highest priority first (re-chosen after each part), while
        tokens last; a part larger than the bucket leaves once the bucket is full, putting it into debt. Stops at a
        record not made yet (`to_make`)."""
        self._refill(now)
        while True:
            parcel = self._next()
            if parcel is None or parcel.make is not None:
                return
            size = parcel.sizes[parcel.sent]
            if self._tokens < min(size, self.burst):
                return
            self._tokens -= size
            self.spent += size
            self._queued -= size
            part = parcel.parts[parcel.sent]
            parcel.sent += 1
            if parcel.sent == len(parcel.parts):
                self._lanes[parcel.priority].remove(parcel)
            yield parcel, part

    def to_make(self, now: float) -> Parcel[P] | None:
        """The record not made yet that leaves next, once the tokens cover its estimated first part; from now on it
        is the caller's to make (outside any lock) and hand back through `made`, and it is never dropped."""
        parcel = self._next()
        if parcel is None or parcel.make is None or parcel.making:
            return None
        self._refill(now)
        if self._tokens < min(parcel.sizes[0], self.burst):
            return None
        parcel.making = True
        return parcel

    def made(self, parcel: Parcel[P], made: tuple[list[P], list[int]] | None) -> None:
        """`parcel` made: its parts and their sizes replace the estimates; None: its maker could not make it (and
        counted why), it leaves the lanes."""
        self._queued -= parcel.waiting_bytes
        parcel.make = None
        lane = self._lanes.get(parcel.priority, [])
        if made is None:
            if parcel in lane:
                lane.remove(parcel)
            return
        parcel.parts, parcel.sizes = made
        if not parcel.parts:  # nothing to send
            if parcel in lane:
                lane.remove(parcel)
            return
        self._queued += parcel.waiting_bytes

    def expire(self, now: float) -> list[Parcel[P]]:
        """Drop the records not started that waited longer than `max_wait_s` (counted)."""
        dropped = []
        for lane in self._lanes.values():
            for parcel in [p for p in lane if p.droppable and now - p.arrived > self.max_wait_s]:
                dropped.append(self._drop(lane, parcel, TOO_LATE))
        return dropped

    def wait_s(self, now: float) -> float:
        """How long until the next waiting part can leave (0: now; a large value: nothing waits)."""
        parcel = self._next()
        if parcel is None:
            return 3600.0
        self._refill(now)
        missing = min(parcel.sizes[parcel.sent], self.burst) - self._tokens
        return max(0.0, missing / self.bytes_per_s)

    def drain(self) -> list[Parcel[P]]:
        """Every record still waiting, in priority order, taken out of the lanes (at stop: handed on, not lost; one
        not made yet is still to be made by the caller)."""
        out = [p for priority in sorted(self._lanes, reverse=True) for p in self._lanes[priority]]
        self._lanes.clear()
        self._queued = 0
        return out

    @property
    def queued(self) -> int:
        """Bytes waiting in the lanes."""
        return self._queued

    def kept_up(self) -> bool:
        """Nothing waits: the budget carries what the routes offer (clears `short`)."""
        idle = not any(self._lanes.values())
        if idle:
            self.short = False
        return idle

    def _next(self) -> Parcel[P] | None:
        """The parcel whose next part leaves first: the highest priority; in a lane, one already started (or being
        made), else the oldest."""
        for priority in sorted(self._lanes, reverse=True):
            lane = self._lanes[priority]
            if lane:
                return next((p for p in lane if not p.droppable), lane[0])
        return None

    def _lowest_oldest(self, *, but: Parcel[P]) -> Parcel[P] | None:
        for priority in sorted(self._lanes):
            for parcel in self._lanes[priority]:
                if parcel.droppable and parcel is not but:
                    return parcel
        return None

    def _drop(self, lane: list[Parcel[P]], parcel: Parcel[P], reason: str) -> Parcel[P]:
        lane.remove(parcel)
        self._queued -= parcel.waiting_bytes
        self.drops[(parcel.stream, reason)] += 1
        self.short = True
        parcel.dropped = reason
        return parcel

    def _refill(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.bytes_per_s)
        if self._at is None or now > self._at:
            self._at = now
