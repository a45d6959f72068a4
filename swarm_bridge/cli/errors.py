"""UsageError: a command-line option that cannot be used; names the option, what is wrong and the fix."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["UsageError"]


class UsageError(SwarmBridgeError, ValueError):
    """`option` (with the value given) is wrong because of `problem`; `fix` says what to pass instead."""

    def __init__(self, option: str, problem: str, fix: str) -> None:
        self.option, self.problem, self.fix = option, problem, fix
        super().__init__(f"{option}: {problem}. Fix: {fix}")
