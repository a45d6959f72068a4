"""The fleet demo's pure parts: dealing bags to robots, stream names, bridge configs, the report's figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from swarm_bridge.config import RobotBridgeConfig, validate_config
from swarm_bridge.demo.errors import DemoSettingError
from swarm_bridge.demo.plan import DemoRobot, TaskPlan, action_tasks, bridge_config, fleet_of, stream_name, task_plan
from swarm_bridge.demo.report import fleet_report, percentile, plot, render

BAGS = [Path(f"/bags/b{i}") for i in range(5)]


def test_one_robot_per_bag_by_default_with_kinds_cycling() -> None:
    fleet = fleet_of(BAGS)
    assert [r.robot_id for r in fleet] == ["amr_000", "drone_001", "arm_002", "amr_003", "drone_004"]
    assert [r.bags for r in fleet] == [(b,) for b in BAGS]
    assert fleet[1].capabilities == ("fly", "inspect")


def test_fewer_robots_share_the_bags_and_more_robots_replay_them_again() -> None:
    assert [r.bags for r in fleet_of(BAGS, 2)] == [(BAGS[0], BAGS[2], BAGS[4]), (BAGS[1], BAGS[3])]
    more = fleet_of(BAGS[:2], 5)
    assert [r.bags for r in more] == [(BAGS[0],), (BAGS[1],), (BAGS[0],), (BAGS[1],), (BAGS[0],)]


@pytest.mark.parametrize(("bags", "robots", "problem"), [([], None, "no bags"), (BAGS, 0, "--robots must be >= 1")])
def test_bad_fleets_are_refused(bags: list[Path], robots: int | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        fleet_of(bags, robots)


@pytest.mark.parametrize(("topic", "stream"), [("/tf", "tf"), ("/turtle1/pose", "turtle1_pose"),
                                               ("/imu/data", "imu_data"), ("/Mixed-Case", "mixed_case"), ("/", "root")])
def test_stream_names(topic: str, stream: str) -> None:
    assert stream_name(topic) == stream


def test_bridge_config_validates_and_keeps_streams_unique(tmp_path: Path) -> None:
    robot = DemoRobot("amr_000", "amr", ("navigate",), (tmp_path,))
    topics = [("/tf", "tf2_msgs/msg/TFMessage", False), ("/tf_static", "tf2_msgs/msg/TFMessage", True),
              ("/task_status", "std_msgs/msg/String", False)]
    data = bridge_config(robot, topics,
                         host="127.0.0.1", port=1883, spool=tmp_path / "s.db", registry=str(tmp_path / "reg"))
    config = validate_config(data, RobotBridgeConfig, source="<test>")
    streams = [r.stream for r in config.routes]
    assert len(streams) == len(set(streams))
    assert streams[:3] == ["tf", "tf_static", "task_status_"]  # the bag's topic never takes the fleet's stream
    assert {r.qos for r in config.routes[:3]} == {"transient_local"} and config.routes[0].qos_depth == 10000
    assert [r.direction for r in config.routes[-3:]] == ["up", "up", "down"]


@dataclass
class _Stream:
    robot_id: str = "amr_000"
    bag_topic: str = "/odom"
    ros_type: str = "nav_msgs/msg/Odometry"
    stream: str = "odom"
    in_bag: int = 4
    published: int = 4
    arrived: set[int] = field(default_factory=lambda: {0, 1, 2, 3})
    duplicates: int = 0
    undecodable: int = 0
    content_mismatch: int = 0
    latency_ns: list[int] = field(default_factory=lambda: [1_000_000, 2_000_000, 3_000_000, 4_000_000])
    arrival_ns: list[int] = field(default_factory=lambda: [0, 500_000_000, 1_000_000_000, 2_000_000_000])
    samples: list[tuple[int, int]] = field(default_factory=list)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile([7], 99) == 7


def test_report_adds_up_and_names_what_is_missing(tmp_path: Path) -> None:
    short = _Stream(bag_topic="/scan", stream="scan", arrived={0, 1, 2})
    report = fleet_report([_Stream(), short], replay_s=2.0, skipped={})
    assert report["totals"]["delivered"] == 7 and report["totals"]["missing"] == 1
    assert report["topics"]["/scan"] == {"read": 4, "published": 4, "delivered": 3}
    assert report["totals"]["throughput_per_s"] == 3.5  # 7 records over 2 s of arrivals
    assert report["totals"]["latency_p50_ms"] == 2.0
    assert not report["all_delivered"]
    text = render(report)
    assert "SOME MESSAGES WERE NOT DELIVERED" in text and "/scan" in text
    assert fleet_report([_Stream()], replay_s=1.0, skipped={})["all_delivered"]


def test_plot_writes_a_png(tmp_path: Path) -> None:
    stream = _Stream(samples=[(i * 100_000_000, 1_000_000 + i) for i in range(30)])
    path = plot([stream], tmp_path / "out" / "demo.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_record_whose_content_differs_fails_the_report() -> None:
    report = fleet_report([_Stream(content_mismatch=1)], replay_s=1.0, skipped={})
    assert report["totals"]["content_mismatch"] == 1 and not report["all_delivered"]


def test_body_digest_is_equal_for_equal_bodies_nan_included() -> None:
    from swarm_bridge.demo.delivery import body_digest

    assert body_digest({"x": float("nan"), "b": b"\x00"}) == body_digest({"b": b"\x00", "x": float("nan")})
    assert body_digest({"x": 1.0}) != body_digest({"x": 1.5})


def test_tasks_take_a_count_or_actions_with_an_optional_count() -> None:
    assert task_plan(None) == TaskPlan(None, "reference") and task_plan("7") == TaskPlan(7, "reference")
    assert task_plan("actions") == TaskPlan(None, "actions") and task_plan("actions:3") == TaskPlan(3, "actions")
    for wrong in ("many", "actions:x", "action:3"):
        with pytest.raises(DemoSettingError, match=r"Fix: e\.g\. --tasks 10, --tasks actions, --tasks actions:6"):
            task_plan(wrong)


def test_a_robot_doing_its_tasks_through_actions_maps_each_of_its_kinds_to_navigate_to_pose() -> None:
    robot = DemoRobot("drone_001", "drone", ("fly", "inspect"), ())
    doc = bridge_config(robot, [], host="127.0.0.1", port=1883, spool=Path("/tmp/s.db"), registry="/tmp/r",
                        tasks=action_tasks(robot))
    config = validate_config(doc, RobotBridgeConfig)
    assert config.tasks is not None and set(config.tasks.actions) == {"fly", "inspect"}
    assert {a.type for a in config.tasks.actions.values()} == {"nav2_msgs/action/NavigateToPose"}
    assert "tasks" not in bridge_config(robot, [], host="h", port=1, spool=Path("/tmp/s.db"), registry="/tmp/r")
