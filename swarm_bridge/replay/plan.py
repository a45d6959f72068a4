"""What to replay and when: bags merged in time order, topics selected, original timing scaled by the rate.

Each bag's clock starts at its own first message, so bags recorded years apart play side by side.
Loop k starts one period after loop k-1: the span of the first loop plus its mean message gap, so the
first message of a loop never lands on the last one of the previous.
"""

from __future__ import annotations

import difflib
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from swarm_bridge.replay.bag import Bag, BagMessage
from swarm_bridge.replay.errors import ReplayError

__all__ = ["Due", "check_rate", "merged", "schedule", "select_topics"]


@dataclass(frozen=True, slots=True)
class Due:
    """A message and when to publish it: `at_s` seconds after the replay starts, in loop `loop` (from 0)."""

    at_s: float
    loop: int
    message: BagMessage


def check_rate(rate: float) -> float:
    """`rate` when it is a finite number > 0, else ReplayError."""
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ReplayError("--rate", f"must be a finite number > 0 (got {rate})",
                          "use 1 for the original timing, 10 for ten times faster, 0.5 for half speed")
    return float(rate)


def select_topics(bags: Sequence[Bag], wanted: Iterable[str] = ()) -> list[str]:
    """The topics to replay (every topic of every bag when `wanted` is empty; a renamed one by either name), sorted.

    ReplayError names a wanted topic that no bag has (with the nearest one), and a topic that two bags
    carry with different types."""
    available: dict[str, str] = {}
    renamed: dict[str, str] = {}  # a topic may be asked for by its name in the bag
    for bag in bags:
        for topic in bag.topics.values():
            if topic.recorded:
                renamed[topic.recorded] = topic.name
            have = available.setdefault(topic.name, topic.ros_type)
            if have != topic.ros_type:
                raise ReplayError(f"topic {topic.name}", f"has type {have} in one bag and {topic.ros_type} in "
                                  f"{bag.path}", "replay these bags separately, or leave the topic out with --topics")
    chosen = list(dict.fromkeys(renamed.get(name, name) for name in wanted)) or sorted(available)
    for name in chosen:
        if name not in available:
            near = difflib.get_close_matches(name, available, n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            raise ReplayError(f"--topics {name}", "is in none of the bags",
                              f"{hint}the bags have: {', '.join(sorted(available)) or 'no topics'}")
    return sorted(chosen)


def merged(bags: Sequence[Bag], topics: Iterable[str]) -> Iterator[BagMessage]:
    """The messages of `topics` from all `bags`, in order of their offset from each bag's first message."""
    wanted = frozenset(topics)
    return heapq.merge(*(bag.messages(wanted) for bag in bags), key=lambda m: m.offset_ns)


def schedule(play: Callable[[], Iterable[BagMessage]], *, rate: float, loops: int | None = 1) -> Iterator[Due]:
    """When to publish each message of `play()` (called once per loop): offsets divided by `rate`.

    `loops` is how many times to play (None: forever). A first loop with no messages ends the schedule."""
    rate = check_rate(rate)
    period_ns = 0
    for loop in itertools.count() if loops is None else range(loops):
        base_ns = loop * period_ns
        count = 0
        last_ns = 0
        for message in play():
            count += 1
            last_ns = max(last_ns, message.offset_ns)
            yield Due((base_ns + message.offset_ns) / rate / 1e9, loop, message)
        if loop == 0:
            if count == 0:
                return
            period_ns = last_ns + (last_ns // (count - 1) if count > 1 else 1_000_000)
