"""ReplayError: a bag or a replay option that cannot be used, with what is wrong and how to fix it."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["ReplayError", "UnconvertibleMessage"]


class ReplayError(SwarmBridgeError):
    """Bad replay input; `subject` names the file, topic or option, `fix` says what to do about it."""

    def __init__(self, subject: str, problem: str, fix: str) -> None:
        self.subject = subject
        self.problem = problem
        self.fix = fix
        super().__init__(f"{subject}: {problem}. Fix: {fix}")


class UnconvertibleMessage(SwarmBridgeError, ValueError):
    """One recorded message that cannot become its ROS 2 type (counted and skipped, the replay goes on)."""
