"""Down direction: which commands a robot accepts. Addressed to it, not expired, not seen before; when signed
(commands.verifier), issued recently by a trusted key."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from enum import Enum

from swarm_bridge.commands.errors import GateSettingError

__all__ = ["CommandGate", "Verdict"]


class Verdict(str, Enum):
    """What happens to one command; every refusal is counted under its verdict."""

    ACCEPT = "accept"
    OTHER_ROBOT = "addressed to another robot"
    EXPIRED = "deadline passed"
    DUPLICATE = "duplicate command id"
    # Authenticity (commands.verifier decides the first three; the gate decides STALE).
    UNSIGNED = "unsigned command"
    UNKNOWN_KEY = "unknown signing key"
    BAD_SIGNATURE = "bad signature"
    STALE = "stale issued_at"


@dataclass
class CommandGate:
    """Checks commands for one robot; remembers the last `memory` command ids to refuse redeliveries.
    An id counts as seen once `remember` says its command was delivered (published on ROS), not when it was
    checked: a command whose delivery failed is accepted again when it comes again.

    `max_age_s`: a command whose `issued_ns` is given must be at most this old and at most `max_clock_skew_s`
    in the future (None: issued_at is not checked)."""

    robot_id: str
    memory: int = 10_000
    max_age_s: float | None = None
    max_clock_skew_s: float = 30.0

    def __post_init__(self) -> None:
        if self.memory <= 0:
            raise GateSettingError("memory", self.memory, "> 0")
        if self.max_age_s is not None and self.max_age_s <= 0:
            raise GateSettingError("commands.max_age_s", self.max_age_s, "> 0")
        if self.max_clock_skew_s < 0:
            raise GateSettingError("commands.max_clock_skew_s", self.max_clock_skew_s, ">= 0")
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.counts: Counter[Verdict] = Counter()  # verdicts never reached read as 0

    def check(self, *, robot_id: str, command_id: str, deadline_ns: int, now_ns: int,
              issued_ns: int | None = None) -> Verdict:
        """The verdict on one command; `deadline_ns` 0 means none; `issued_ns` (signed commands) is checked
        against max_age_s and max_clock_skew_s. Nothing is remembered: `remember` once it was delivered."""
        verdict = self._verdict(robot_id, command_id, deadline_ns, now_ns)
        if verdict is Verdict.ACCEPT and issued_ns is not None and self._stale(issued_ns, now_ns):
            verdict = Verdict.STALE
        self.counts[verdict] += 1
        return verdict

    def remember(self, command_id: str) -> None:
        """The accepted command `command_id` was delivered: from now on it is a duplicate."""
        self._seen[command_id] = None
        self._seen.move_to_end(command_id)
        if len(self._seen) > self.memory:
            self._seen.popitem(last=False)

    def delivered(self, command_id: str) -> bool:
        """Whether `command_id` was remembered as delivered (a command held before publishing checks again)."""
        return command_id in self._seen

    def note(self, verdict: Verdict) -> None:
        """Count a verdict reached before the gate (UNSIGNED, UNKNOWN_KEY, BAD_SIGNATURE)."""
        self.counts[verdict] += 1

    def _stale(self, issued_ns: int, now_ns: int) -> bool:
        if self.max_age_s is None:
            return False
        return (now_ns - issued_ns > self.max_age_s * 1e9
                or issued_ns - now_ns > self.max_clock_skew_s * 1e9)

    def _verdict(self, robot_id: str, command_id: str, deadline_ns: int, now_ns: int) -> Verdict:
        if robot_id != self.robot_id:
            return Verdict.OTHER_ROBOT
        if command_id in self._seen:
            return Verdict.DUPLICATE
        if deadline_ns and deadline_ns <= now_ns:
            return Verdict.EXPIRED
        return Verdict.ACCEPT
