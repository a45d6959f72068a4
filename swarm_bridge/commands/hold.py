"""Down direction: commands accepted while no ROS subscriber listens wait here, in order, for a bounded time and
number, so a command that arrives before ROS discovery matched the robot's reader is delivered, not lost."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from swarm_bridge.commands.errors import GateSettingError

__all__ = ["CommandHold", "Held"]

T = TypeVar("T")


@dataclass(frozen=True)
class Held(Generic[T]):
    """One command waiting: what to publish, since when (monotonic ns)."""

    item: T
    since_ns: int


class CommandHold(Generic[T]):
    """A bounded FIFO of commands waiting for a subscriber: at most `max_items`, each at most `hold_s`.
    Full: the oldest gives way to the newest (as a ROS keep-last history would). Not thread-safe: its owner locks."""

    def __init__(self, *, hold_s: float, max_items: int) -> None:
        if hold_s < 0:
            raise GateSettingError("commands.hold_s", hold_s, ">= 0")
        if max_items <= 0:
            raise GateSettingError("commands.hold_max", max_items, ">= 1")
        self.hold_s = hold_s
        self.max_items = max_items
        self._items: deque[Held[T]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T, now_ns: int) -> Held[T] | None:
        """Hold `item`; returns the oldest one it pushed out when the hold was full, else None."""
        pushed = self._items.popleft() if len(self._items) >= self.max_items else None
        self._items.append(Held(item, now_ns))
        return pushed

    def take(self) -> list[Held[T]]:
        """Every held command, oldest first; the hold is empty after."""
        items = list(self._items)
        self._items.clear()
        return items

    def expired(self, now_ns: int) -> list[Held[T]]:
        """The commands held longer than hold_s, oldest first, taken out of the hold."""
        limit = now_ns - int(self.hold_s * 1e9)
        gone: list[Held[T]] = []
        while self._items and self._items[0].since_ns <= limit:
            gone.append(self._items.popleft())
        return gone

    def oldest_ns(self) -> int | None:
        """Since when the oldest held command waits (None: nothing held)."""
        return self._items[0].since_ns if self._items else None
