"""The JVM brokers' stop-the-world pauses, read from their `-Xlog:safepoint` log: how often and how long Kafka stood
still in a window (a benchmark step), whatever the collector."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["COLLECTOR_OPTION", "Pauses", "pauses_in"]

COLLECTOR_OPTION = re.compile(r"-XX:\+Use\w+GC")  # a JVM flag that picks the garbage collector
# [1796600797396ms] Safepoint "G1CollectForAllocation", Time since last: ..., Total: 20167470 ns
_LINE = re.compile(r'\[(\d+)ms\] Safepoint "([^"]+)",.*Total: (\d+) ns')
LONG_MS = 20.0  # a pause at least this long counts as long (the fleet's p99 goal is 50 ms end to end)


@dataclass(frozen=True)
class Pauses:
    """The pauses that began in a window: count, their sum and the longest (ms), how many were long, and the
    operation of the longest (e.g. G1CollectForAllocation)."""

    count: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    long: int = 0
    longest: str = ""

    def as_dict(self) -> dict[str, float | int | str]:
        return {"count": self.count, "total_ms": round(self.total_ms, 1), "max_ms": round(self.max_ms, 1),
                f"over_{LONG_MS:g}_ms": self.long, "longest": self.longest}


def pauses_in(log: str, since_ms: float, until_ms: float) -> Pauses:
    """The pauses of `log` (text of `-Xlog:safepoint` with the `timemillis` decoration) that began between
    `since_ms` and `until_ms` (epoch milliseconds); lines of other shapes are skipped."""
    count, total, longest, long, kind = 0, 0.0, 0.0, 0, ""
    for match in _LINE.finditer(log):
        at, operation, ns = int(match.group(1)), match.group(2), int(match.group(3))
        if not since_ms <= at <= until_ms:
            continue
        ms = ns / 1e6
        count, total, long = count + 1, total + ms, long + (ms >= LONG_MS)
        if ms > longest:
            longest, kind = ms, operation
    return Pauses(count, total, longest, long, kind)
