"""Bag topic names as ROS 2 names: ROS 1 bags may hold names ROS 2 refuses (`scan-raw`, `camera/image`, `3d/points`).

The rule (docs/replay.md, "Topic names"), applied to every bag topic, in this order:
1. every character other than a letter, a digit, `_` or `/` becomes `_` (`scan-raw` -> `scan_raw`);
2. a name without a leading `/` is taken from the root namespace (`camera/image` -> `/camera/image`);
3. empty levels go (`//a/` -> `/a`); 4. a level that starts with a digit gets a `_` in front (`/3d` -> `/_3d`).
A name that is already valid stays as it is; one that maps to nothing (`/`, `-`) cannot be replayed.
"""

from __future__ import annotations

import re

__all__ = ["is_ros2_topic", "ros2_topic"]

_VALID = re.compile(r"(/[A-Za-z_][A-Za-z0-9_]*)+")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_/]")


def is_ros2_topic(name: str) -> bool:
    """True when `name` is a valid absolute ROS 2 topic name with no substitutions (`/a/b_1`)."""
    return _VALID.fullmatch(name) is not None


def ros2_topic(recorded: str) -> str:
    """The ROS 2 name of the bag topic `recorded` by the rule above; "" when nothing valid is left."""
    if is_ros2_topic(recorded):
        return recorded
    levels = [level for level in _NOT_ALLOWED.sub("_", recorded).split("/") if level]
    return "".join(f"/_{level}" if level[0].isdigit() else f"/{level}" for level in levels)
