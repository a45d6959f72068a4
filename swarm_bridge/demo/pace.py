"""How fast the demo replays and whether the machine kept up: the bags' offered peak, the default rate picked from
it and the machine's cores, the records in flight, the verdict against the 1 s goal.

Pure values: the demo (demo/fleet.py, cli/demo.py) feeds them timestamps, tests check them without ROS or brokers.
The budget per core comes from runs of the 12 shared bags on 2 busy cores (docs/demo.md): x2 (a peak of about
2,100 msgs/s) held p99 ROS publish -> broker under 1 s; x10 (about 10,100 msgs/s) fell seconds behind.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swarm_bridge.demo.errors import DemoSettingError

__all__ = ["GOAL_MS", "MSGS_PER_CORE", "RATES", "RateChoice", "in_flight_peak", "machine_cores", "offered_peak",
           "pick_rate", "verdict"]

RATES = (10.0, 5.0, 2.0, 1.0)  # the rates the default picks from, fastest first
# messages/s of the whole demo (replay, bridges, broker, tap) one core is expected to hold: on 2 cores x2 held at a
# peak of 2,096 and of 2,596 msgs/s (p99 12 and 7 ms), x5 (5,179) did not
MSGS_PER_CORE = 1400
GOAL_MS = 1000.0  # p99 ROS publish -> broker the demo is held to


@dataclass(frozen=True)
class RateChoice:
    """A replay rate, the peak messages/s the bags offer at it, the budget of the machine, and whether it fits."""

    rate: float
    peak_per_s: int
    budget_per_s: int
    picked: bool  # True: chosen by `pick_rate`; False: given by the user

    @property
    def fits(self) -> bool:
        return self.peak_per_s <= self.budget_per_s

    def describe(self) -> str:
        """One line for the terminal: the rate, why, and how to change it."""
        how = ("picked: the fastest of x" + ", x".join(f"{r:g}" for r in RATES) + " that fits") if self.picked \
            else "--rate"
        fit = "within" if self.fits else "OVER"
        return (f"replay at x{self.rate:g} ({how}): the bags offer at most {self.peak_per_s:,} msgs/s, {fit} the "
                f"{self.budget_per_s:,} msgs/s this machine is expected to hold with p99 <= {GOAL_MS / 1000:g} s")


def machine_cores() -> int:
    """The cores this process may run on (its affinity, so a container's limit counts), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def offered_peak(due_s: Iterable[float], *, rate: float = 1.0, window_s: float = 1.0) -> int:
    """The most messages due within any `window_s` of the replay at `rate`; `due_s` are their times at x1."""
    times = sorted(t / rate for t in due_s)
    peak = start = 0
    for end, at in enumerate(times):
        while at - times[start] >= window_s:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def pick_rate(due_s: Sequence[float], *, cores: int, per_core: int = MSGS_PER_CORE,
              rates: Sequence[float] = RATES) -> RateChoice:
    """The fastest of `rates` whose offered peak fits `cores * per_core` messages/s; the slowest when none does
    (its `fits` says so)."""
    budget = cores * per_core
    choice = None
    for rate in sorted(rates, reverse=True):
        choice = RateChoice(rate, offered_peak(due_s, rate=rate), budget, picked=True)
        if choice.fits:
            return choice
    if choice is None:
        raise DemoSettingError("no rates to pick from. Fix: give pick_rate at least one rate (e.g. RATES)")
    return choice


def in_flight_peak(published_ns: Iterable[int], arrived_ns: Iterable[int]) -> int:
    """The most records published on ROS and not yet at the broker at any one time (the queue of the whole path);
    an arrival at the same nanosecond as a publish counts first."""
    level = peak = 0
    for _at, step in heapq.merge(((t, -1) for t in sorted(arrived_ns)), ((t, 1) for t in sorted(published_ns))):
        level += step
        peak = max(peak, level)
    return peak


def verdict(latency_p99_ms: float, lag_p99_ms: float, *, goal_ms: float = GOAL_MS) -> str:
    """'held' when records reached the broker within `goal_ms` (p99) and the replay kept its schedule within it;
    else 'behind' and where."""
    if math.isnan(latency_p99_ms):
        return "no records delivered"
    late = [f"p99 ROS publish -> broker {latency_p99_ms / 1000:.1f} s"] if latency_p99_ms > goal_ms else []
    if lag_p99_ms > goal_ms:
        late.append(f"the replay published {lag_p99_ms / 1000:.1f} s behind its schedule (p99)")
    return "held" if not late else "behind: " + "; ".join(late)
