"""Duplicate removal by (robot_id, stream, seq), pure: per stream the highest seq and a window of seqs below it.

A robot's seq only grows per stream (run << 32 | n), so the highest seq seen plus a bitmask of the `window`
seqs below it tells a resend from a new record even when two gateways interleave one stream. A seq older
than the window cannot be told apart and counts as a duplicate (`BELOW_WINDOW`). Memory is bounded: at most
`max_streams` streams, the one seen first is forgotten beyond it. A record of a stream it never saw, of a run
newer than the stream's highest seq, or (`whole`: this gateway gets every record the robot sends to its hub)
beyond a gap in the run, is not `placed`: the robot was at another hub meanwhile, whose gateway may have
written it.
"""

from __future__ import annotations

from swarm_bridge.codec.envelope import RUN_SHIFT
from swarm_bridge.gateway.errors import GatewaySettingError

__all__ = ["BELOW_WINDOW", "DUPLICATE", "NEW", "RUN_SHIFT", "Dedup"]

NEW = 0
DUPLICATE = 1
BELOW_WINDOW = 2


class Dedup:
    """`admit(robot, stream, seq)` -> NEW (first time), DUPLICATE (seen) or BELOW_WINDOW (too old to tell)."""

    def __init__(self, *, window: int = 4096, max_streams: int = 100_000, whole: bool = False) -> None:
        if window < 1 or max_streams < 1:
            raise GatewaySettingError(f"dedup.window {window}, dedup.max_streams {max_streams}", "both must be >= 1",
                                      "set dedup.window and dedup.max_streams to 1 or more in the gateway config")
        self.window = window
        self.max_streams = max_streams
        self.whole = whole  # streams arrive here whole (a plain subscription), not split among a share group
        self._full = (1 << window) - 1
        # (robot_id, stream) -> [highest seq, bitmask: bit i set = seq (highest - i) seen]
        self._streams: dict[tuple[str, str], list[int]] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def admit(self, robot_id: str, stream: str, seq: int) -> int:
        """Record `seq` as seen and say whether it was new."""
        state = self._streams.get((robot_id, stream))
        if state is None:
            if len(self._streams) >= self.max_streams:
                del self._streams[next(iter(self._streams))]
            self._streams[(robot_id, stream)] = [seq, 1]
            return NEW
        high, mask = state
        if seq > high:
            shift = seq - high
            state[0] = seq
            state[1] = ((mask << shift) | 1) & self._full if shift < self.window else 1
            return NEW
        back = high - seq
        if back >= self.window:
            return BELOW_WINDOW
        bit = 1 << back
        if mask & bit:
            return DUPLICATE
        state[1] = mask | bit
        return NEW

    def placed(self, robot_id: str, stream: str, seq: int) -> bool:
        """Whether the window can judge `seq` from what this gateway saw: not for a stream it never saw, a newer
        run, or (`whole`) a seq past a gap. The robot may have been at another hub, whose gateway wrote records
        it now sends here again (what it never saw acknowledged there)."""
        state = self._streams.get((robot_id, stream))
        if state is None:
            return False
        high = state[0]
        if seq >> RUN_SHIFT != high >> RUN_SHIFT:
            return seq < high  # an older run's record: below the window whatever Kafka holds
        return seq <= high + 1 or not self.whole

    def highest(self, robot_id: str, stream: str) -> int | None:
        """The highest seq seen on the stream, None if it is unknown."""
        state = self._streams.get((robot_id, stream))
        return None if state is None else state[0]
