"""Decimation: let a route through at most `max_rate_hz`, counting what it holds back."""

from __future__ import annotations

from swarm_bridge.routing.errors import RouteError

__all__ = ["Decimator"]


class Decimator:
    """Passes a message when at least 1/max_rate_hz has gone by since the last one passed.

    Slots sit on a grid one period apart, so a 100 Hz source decimated to 10 Hz yields 10 Hz and
    not 9.x; after a pause of a period or more the grid restarts at the arrival, so it does not burst.
    """

    def __init__(self, max_rate_hz: float | None) -> None:
        if max_rate_hz is not None and max_rate_hz <= 0:
            raise RouteError(f"max_rate_hz must be > 0 or None for no limit (got {max_rate_hz})",
                             "give a rate in Hz > 0, or leave max_rate_hz out for no limit")
        self.period_ns = 0 if max_rate_hz is None else round(1e9 / max_rate_hz)
        self.passed = 0
        self.held_back = 0
        self._next_ns: int | None = None

    def admit(self, now_ns: int) -> bool:
        """True if a message arriving at `now_ns` goes through."""
        if self._next_ns is not None and now_ns < self._next_ns:
            self.held_back += 1
            return False
        on_grid = self._next_ns is not None and now_ns - self._next_ns < self.period_ns
        slot = self._next_ns if on_grid and self._next_ns is not None else now_ns
        self._next_ns = slot + self.period_ns
        self.passed += 1
        return True
