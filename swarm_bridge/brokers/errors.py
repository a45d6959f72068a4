"""The one error type of the broker helpers: what failed, why, and how to fix it."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["BrokerError", "BrokerSettingError"]


class BrokerError(SwarmBridgeError, RuntimeError):
    """A broker could not be found, started, probed or stopped.

    `str()` reads "<service>: <problem>. Fix: <fix>", then the log tail if there is one.
    """

    def __init__(self, service: str, problem: str, fix: str, log_tail: str | None = None) -> None:
        self.service = service
        self.problem = problem
        self.fix = fix
        self.log_tail = log_tail
        super().__init__(self._message())

    def _message(self) -> str:
        text = f"{self.service}: {self.problem}. Fix: {self.fix}"
        if self.log_tail:
            text += f"\n--- last lines of the {self.service} log ---\n{self.log_tail.rstrip()}"
        return text

    def __str__(self) -> str:
        return self._message()


class BrokerSettingError(BrokerError, ValueError):
    """Broker options that do not fit together or are out of range, refused before anything starts."""
