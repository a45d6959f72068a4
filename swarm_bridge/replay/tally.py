"""Per-topic counts of a replay: read from the bags, published, skipped (with why), for the end-of-run report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReplayTally", "TopicTally"]


@dataclass(slots=True)
class TopicTally:
    """One bag topic: its ROS 2 type, messages read, publishes done (over all robots), skips by reason."""

    topic: str
    ros_type: str
    read: int = 0
    published: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


class ReplayTally:
    """Counts by bag topic; a message published for N robots counts N times."""

    def __init__(self) -> None:
        self.topics: dict[str, TopicTally] = {}

    def _topic(self, topic: str, ros_type: str) -> TopicTally:
        found = self.topics.get(topic)
        if found is None:
            found = self.topics[topic] = TopicTally(topic, ros_type)
        return found

    def read(self, topic: str, ros_type: str) -> None:
        """One message read from a bag."""
        self._topic(topic, ros_type).read += 1

    def published(self, topic: str, ros_type: str, count: int = 1) -> None:
        """`count` publishes done."""
        self._topic(topic, ros_type).published += count

    def skipped(self, topic: str, ros_type: str, reason: str, count: int = 1) -> None:
        """`count` publishes not done, and why."""
        self._topic(topic, ros_type).skipped[reason] += count

    @property
    def total_published(self) -> int:
        """Publishes done on all topics."""
        return sum(t.published for t in self.topics.values())

    @property
    def total_skipped(self) -> int:
        """Publishes skipped on all topics."""
        return sum(t.skipped.total() for t in self.topics.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON reports: per topic type, read, published, skipped and reasons."""
        return {name: {"ros_type": t.ros_type, "read": t.read, "published": t.published,
                       "skipped": t.skipped.total(), "reasons": dict(t.skipped)}
                for name, t in sorted(self.topics.items())}

    def table(self) -> str:
        """A text table, one topic per line, the reasons for skips under it."""
        rows = [("topic", "type", "read", "published", "skipped")]
        rows += [(t.topic, t.ros_type, str(t.read), str(t.published), str(t.skipped.total()))
                 for _, t in sorted(self.topics.items())]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = []
        for index, row in enumerate(rows):
            lines.append("  ".join(cell.rjust(w) if i >= 2 else cell.ljust(w)
                                   for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip())
            if index:
                topic = self.topics[row[0]]
                lines += [f"    skipped {n}: {reason}" for reason, n in sorted(topic.skipped.items())]
        lines.append(f"total: {self.total_published} published, {self.total_skipped} skipped")
        return "\n".join(lines)
