"""RouteError: a topic name, route, rate or shard count that routing cannot use; says what and how to fix it.
PresenceError: a presence payload that does not read. HealthError: a gateway health record that does not read."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["HealthError", "PresenceError", "RouteError"]


class RouteError(SwarmBridgeError, ValueError):
    """`problem` names the value (topic part, pattern, key) and what is wrong with it; `fix` says what to give."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}. Fix: {fix}")


class PresenceError(SwarmBridgeError, ValueError):
    """A presence payload that is not {robot_id, state: online|offline, reason}; the caller counts and skips it."""


class HealthError(SwarmBridgeError, ValueError):
    """A gateway health record that does not read (names the field and what it must be); the reader counts and
    skips it."""
