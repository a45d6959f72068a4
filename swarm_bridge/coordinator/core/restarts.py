"""How often an instance may start again in its own process after Kafka ended it: a bounded budget, so a real
conflict (two processes with one instance_id fencing each other) still ends with an error instead of a loop."""

from __future__ import annotations

from collections import deque

__all__ = ["RestartBudget"]


class RestartBudget:
    """At most `limit` restarts within any `window_s` seconds."""

    def __init__(self, limit: int = 3, window_s: float = 600.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._times: deque[float] = deque()

    def take(self, now: float) -> bool:
        """True (and counted) if one more restart fits the budget at time `now` (monotonic seconds)."""
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now)
        return True

    @property
    def left(self) -> int:
        """Restarts still allowed in the current window (as of the last `take`)."""
        return self.limit - len(self._times)
