"""The simulated base: drives to a goal at its speed, refuses another frame, gives up at the map's edge."""

from __future__ import annotations

import pytest

from swarm_bridge.sim.navigation import Base


def test_the_base_drives_to_the_goal_at_its_speed() -> None:
    base = Base(speed_mps=2.0)
    legs = [base.step(3.0, 4.0, 1.0) for _ in range(3)]
    assert [round(leg.remaining, 6) for leg in legs] == [3.0, 1.0, 0.0]
    assert legs[-1].arrived and (base.x, base.y) == pytest.approx((3.0, 4.0))


def test_a_goal_beyond_the_map_is_given_up_at_the_edge_and_another_frame_refused() -> None:
    base = Base(speed_mps=10.0, half_size_m=5.0)
    leg = base.step(8.0, 0.0, 1.0)
    assert leg.failed == "no path to (8, 0): beyond the map's edge at +-5 m" and base.x == 5.0
    assert base.refusal("odom") == "goal in frame 'odom'; this base navigates in 'map'"
    assert base.refusal("map") == "" and base.refusal("") == ""
