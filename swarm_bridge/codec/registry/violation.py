"""What a schema evolution rule reports: the first `Violation` (field path, rule, why) in one `Direction`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Direction", "Violation"]

# BACKWARD: readers of the new schema read data of the earlier one; FORWARD: the other way round.
Direction = Literal["BACKWARD", "FORWARD"]


@dataclass(frozen=True)
class Violation:
    """The first place where one schema cannot read another: field path, the format's rule, and why."""

    field: str
    rule: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}: {self.problem}"
