"""Config errors that name the file, the key path, the problem and what was given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["ConfigError", "ConfigProblem", "ConfigValueError"]


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong at one place in a config file."""

    location: str
    problem: str
    got: str | None = None

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        got = f" (got {self.got})" if self.got is not None else ""
        return f"{where}{self.problem}{got}"


class ConfigError(SwarmBridgeError, ValueError):
    """A config file that cannot be used; lists every problem found, each with its key path."""

    def __init__(self, path: Path | str, problems: list[ConfigProblem]) -> None:
        self.path = str(path)
        self.problems = tuple(problems)
        lines = [f"{self.path}: {p}" for p in self.problems]
        super().__init__("\n".join(lines) if lines else f"{self.path}: invalid config")


class ConfigValueError(SwarmBridgeError, ValueError):
    """One value a config model's validator refuses. Pydantic reports it under its key path and `load` gathers
    every one into a ConfigError naming the file; a ValueError, as pydantic validators must raise."""
