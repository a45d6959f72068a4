"""Dropped inputs of a coordinator (either mode): every one counted, the log kept short whatever the rate."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from swarm_bridge.coordinator.core.errors import CoordinatorSettingError

__all__ = ["DropLog"]


class DropLog:
    """Counts each drop by reason (the dispatch's counts and the dropped metric); logs the first `first` of a
    reason at WARNING with their detail, then at most one line per reason every `every_s` with how many more."""

    def __init__(self, who: str, counts: Counter[str], metric: Any, log: logging.Logger, *, first: int = 10,
                 every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        """`metric`: a Prometheus counter labelled by reason; `who` starts every line (the instance)."""
        if first < 1:
            raise CoordinatorSettingError(f"DropLog: first must be >= 1 (got {first})")
        self.who, self.counts, self.metric, self.log = who, counts, metric, log
        self.first, self.every_s, self.clock = first, every_s, clock
        self._reported: dict[str, tuple[int, float]] = {}  # reason -> (count at its last line, when)

    def __call__(self, reason: str, detail: str) -> None:
        """Count one drop of `reason`; `detail` names the record (topic, partition, offset, robot) and why."""
        self.counts[reason] += 1
        self.metric.labels(reason).inc()
        count, now = self.counts[reason], self.clock()
        if count < self.first:
            self.log.warning("%s: dropped (%s): %s", self.who, reason, detail)
        elif reason not in self._reported:
            self.log.warning("%s: dropped (%s): %s; further drops of this reason are counted (metric "
                             "swarm_coordinator_dropped_total) and summed up every %g s", self.who, reason, detail,
                             self.every_s)
            self._reported[reason] = (count, now)
        else:
            last_count, last_at = self._reported[reason]
            if now - last_at >= self.every_s:
                self.log.warning("%s: dropped (%s): %d more in the last %.0f s (%d in all); latest: %s", self.who,
                                 reason, count - last_count, now - last_at, count, detail)
                self._reported[reason] = (count, now)
