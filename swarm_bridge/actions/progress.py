"""Feedback as progress: one rule per way a feedback field tells how far a goal is (a table, chosen by config),
and a rate cap so a fast feedback stream becomes a few RUNNING reports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PROGRESS_RULES", "ProgressReader", "RateCap", "field_value"]


@dataclass
class _Seen:
    """What a rule remembers of one goal's feedback (the largest `remaining` so far)."""

    largest: float = 0.0


def _remaining(value: float, seen: _Seen) -> float:
    """A value counting down to 0 (distance, time, items left): 1 - value / the largest seen."""
    seen.largest = max(seen.largest, value)
    return 1.0 - value / seen.largest if seen.largest > 0 else 0.0


# Rule name (config `progress:` key) -> (feedback value, what the goal's feedback left) -> progress.
PROGRESS_RULES: dict[str, Callable[[float, _Seen], float]] = {
    "remaining": _remaining,
    "fraction": lambda value, _seen: value,
    "percent": lambda value, _seen: value / 100.0,
}


def field_value(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a message dict; KeyError when it is not there."""
    value: Any = data
    for part in path.split("."):
        value = value[part]
    return value


class ProgressReader:
    """One goal's progress from its feedback: never below what it already reported, clamped to 0..1."""

    def __init__(self, rule: str, path: str) -> None:
        self._rule, self._path = PROGRESS_RULES[rule], path
        self._seen = _Seen()
        self.progress = 0.0

    def read(self, feedback: Mapping[str, Any]) -> float:
        """Progress after this feedback; a feedback without a readable number leaves it as it was."""
        try:
            value = float(field_value(feedback, self._path))
        except (KeyError, TypeError, ValueError):
            return self.progress
        if value != value:  # NaN: nothing known
            return self.progress
        self.progress = max(self.progress, min(1.0, max(0.0, self._rule(value, self._seen))))
        return self.progress


class RateCap:
    """At most `max_hz` reports a second: `due(now_s)` is true for the first and then once per interval."""

    def __init__(self, max_hz: float) -> None:
        self.interval_s = 1.0 / max_hz
        self._last: float | None = None

    def due(self, now_s: float) -> bool:
        if self._last is not None and now_s - self._last < self.interval_s:
            return False
        self._last = now_s
        return True
