"""Errors of the fleet benchmark: a part that failed or did not answer, or a bench option it cannot use."""

from __future__ import annotations

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["BenchError", "BenchSettingError", "BenchTimeout"]


class BenchError(SwarmBridgeError, RuntimeError):
    """`part` of the benchmark (a worker, a baseline process, the hub) failed because of `problem`; `fix` says
    what to check or change."""

    def __init__(self, part: str, problem: str, fix: str) -> None:
        self.part, self.problem, self.fix = part, problem, fix
        super().__init__(f"{part}: {problem}. Fix: {fix}")


class BenchTimeout(BenchError, TimeoutError):
    """A part of the benchmark that did not answer within its deadline (a TimeoutError too)."""


class BenchSettingError(SwarmBridgeError, ValueError):
    """A bench option (with the value given) out of range; refused before any broker starts."""

    def __init__(self, option: str, problem: str, fix: str) -> None:
        self.option, self.problem, self.fix = option, problem, fix
        super().__init__(f"{option}: {problem}. Fix: {fix}")
