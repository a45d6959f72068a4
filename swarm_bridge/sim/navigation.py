"""A simulated robot base for NavigateToPose, as plain logic: a pose driven toward a goal at a fixed speed on a
square map, a goal in another frame refused, one beyond the map's edge driven to the edge and then given up."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Base", "Leg"]

# nav2_msgs/action/NavigateToPose result error codes (the ones the simulation gives).
NONE, UNKNOWN = 0, 9000


@dataclass(frozen=True)
class Leg:
    """Where one step left the base: distance remaining, and whether the goal was reached or given up (with why)."""

    remaining: float
    arrived: bool = False
    failed: str = ""


@dataclass
class Base:
    """The base's pose in `frame` on a map of +-`half_size_m` around the origin, moving at `speed_mps`."""

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    speed_mps: float = 1.0
    half_size_m: float = 50.0
    frame: str = "map"

    def refusal(self, frame: str) -> str:
        """Why a goal in `frame` is refused; empty when it is taken."""
        if frame not in (self.frame, ""):
            return f"goal in frame {frame!r}; this base navigates in {self.frame!r}"
        return ""

    def step(self, goal_x: float, goal_y: float, dt_s: float) -> Leg:
        """Move `dt_s` toward the goal; stop at the goal, or at the map's edge when the goal lies beyond it."""
        dx, dy = goal_x - self.x, goal_y - self.y
        distance = math.hypot(dx, dy)
        travel = min(distance, self.speed_mps * dt_s)
        if distance > 0:
            self.yaw = math.atan2(dy, dx)
            nx, ny = self.x + dx / distance * travel, self.y + dy / distance * travel
            limit = self.half_size_m
            if abs(nx) > limit or abs(ny) > limit:
                self.x, self.y = max(-limit, min(limit, nx)), max(-limit, min(limit, ny))
                return Leg(math.hypot(goal_x - self.x, goal_y - self.y), failed=f"no path to ({goal_x:g}, "
                           f"{goal_y:g}): beyond the map's edge at +-{limit:g} m")
            self.x, self.y = nx, ny
        remaining = math.hypot(goal_x - self.x, goal_y - self.y)
        return Leg(remaining, arrived=remaining < 1e-6)
