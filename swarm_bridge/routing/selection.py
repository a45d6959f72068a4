"""Which ROS topics a route takes: one exact topic, or a regex with allow and deny lists (as zenoh's bridge)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from swarm_bridge.routing.errors import RouteError

__all__ = ["TopicSelector"]


@dataclass(frozen=True)
class TopicSelector:
    """A topic matches when it fully matches some `allow` pattern and no `deny` pattern."""

    allow: tuple[str, ...]
    deny: tuple[str, ...] = ()
    _allow: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", _compile("allow", self.allow))
        object.__setattr__(self, "_deny", _compile("deny", self.deny))

    @classmethod
    def exact(cls, topic: str) -> TopicSelector:
        """The selector of one topic name, taken literally."""
        return cls(allow=(re.escape(topic),))

    def matches(self, topic: str) -> bool:
        return any(p.fullmatch(topic) for p in self._allow) and not any(p.fullmatch(topic) for p in self._deny)

    def select(self, topics: Iterable[str]) -> list[str]:
        """The matching topics of `topics`, sorted."""
        return sorted(t for t in topics if self.matches(t))


def _compile(name: str, patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise RouteError(f"{name}[{index}]: not a valid regular expression {pattern!r}: {exc}",
                             "write a Python regular expression (re syntax), or escape the special characters") \
                from None
    return tuple(compiled)
