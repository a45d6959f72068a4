"""Down direction: which commands a robot accepts. Addressed to it, not expired, not seen before."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

__all__ = ["CommandGate", "Verdict"]


class Verdict(str, Enum):
    """What happens to one command; every refusal is counted under its verdict."""

    ACCEPT = "accept"
    OTHER_ROBOT = "addressed to another robot"
    EXPIRED = "deadline passed"
    DUPLICATE = "duplicate command id"


@dataclass
class CommandGate:
    """Checks commands for one robot; remembers the last `memory` command ids to refuse redeliveries."""

    robot_id: str
    memory: int = 10_000

    def __post_init__(self) -> None:
        if self.memory <= 0:
            raise ValueError(f"memory must be > 0 (got {self.memory})")
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.counts: dict[Verdict, int] = dict.fromkeys(Verdict, 0)

    def check(self, *, robot_id: str, command_id: str, deadline_ns: int, now_ns: int) -> Verdict:
        """The verdict on one command; `deadline_ns` 0 means none. Accepted ids are remembered."""
        verdict = self._verdict(robot_id, command_id, deadline_ns, now_ns)
        self.counts[verdict] += 1
        if verdict is Verdict.ACCEPT:
            self._seen[command_id] = None
            if len(self._seen) > self.memory:
                self._seen.popitem(last=False)
        return verdict

    def _verdict(self, robot_id: str, command_id: str, deadline_ns: int, now_ns: int) -> Verdict:
        if robot_id != self.robot_id:
            return Verdict.OTHER_ROBOT
        if command_id in self._seen:
            return Verdict.DUPLICATE
        if deadline_ns and deadline_ns <= now_ns:
            return Verdict.EXPIRED
        return Verdict.ACCEPT
