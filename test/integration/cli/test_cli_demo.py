"""`swarm-bridge demo`, the README's first command: real bags, robot_bridge processes, a real Mosquitto, a report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from demo_cli import run_demo as _demo
from old_bags import humble_db3, ros1_bag, sample
from rosbags.typesys import Stores, get_typestore

from swarm_bridge.demo.pace import MSGS_PER_CORE, RATES
from swarm_bridge.replay import Bag, ReplayTypes
from swarm_bridge.ros.types import RosTypeError, message_class

SMALL = ("polymath_cmd_vel_mcap", "inorbit_fake_sensors_ros1", "evo_tf_example_db3", "srs_joy_teleop_diagnostics_ros1")


def _publishable(path: Path) -> dict[str, int]:
    """Messages per topic the bag holds in a type that ROS can publish here (the rest is reported as skipped)."""
    counts: dict[str, int] = {}
    with Bag(path, ReplayTypes()) as bag:
        for topic in bag.topics.values():
            try:
                message_class(topic.ros_type)
            except RosTypeError:
                continue
            if not topic.skip and topic.count:
                counts[topic.name] = topic.count
    return counts


@pytest.mark.integration
def test_demo_delivers_every_replayed_message_of_real_bags(tmp_path: Path, shared_bags: Path,
                                                           ros_env: dict[str, str]) -> None:
    bags = tmp_path / "bags"
    bags.mkdir()
    for name in SMALL:
        (bags / name).symlink_to(shared_bags / name)
    report_path, plot_path = tmp_path / "report.json", tmp_path / "demo.png"
    result = _demo(["--bags", str(bags), "--run-dir", str(tmp_path / "run"),  # the default (auto) rate
                    "--report-json", str(report_path), "--plot", str(plot_path)], ros_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "every replayed message was delivered once" in result.stdout
    report = json.loads(report_path.read_text())
    assert len(report["robots"]) == len(SMALL)
    for row in report["streams"]:
        assert row["delivered"] == row["published"] == row["in_bag"] and row["duplicates"] == 0, row
    read = 0
    for name in SMALL:  # counted again here, straight from the bags
        path = next(p for p in sorted((shared_bags / name).rglob("*")) if p.suffix in (".bag", ".mcap", ".db3"))
        read += sum(_publishable(path.parent if path.suffix == ".db3" else path).values())
    assert read == report["totals"]["delivered"] == report["totals"]["in_bags"]
    # the single-site coordinator assigned 2 tasks per robot; the task executors did them behind their bridges
    assert report["tasks"]["submitted"] == report["tasks"]["done"] == 2 * len(SMALL)
    assert plot_path.read_bytes()[:4] == b"\x89PNG"
    # the rate was picked from the bags' peak and the cores; the report says what was offered and how it went
    pace = report["pace"]
    assert pace["rate_picked"] and pace["rate"] in RATES and pace["rate"] == report["rate"]
    assert 0 < pace["offered_peak_per_s"] <= pace["budget_per_s"] == pace["cores"] * MSGS_PER_CORE
    assert pace["in_flight_peak"] >= 1 and pace["verdict"]
    assert f"replay at x{pace['rate']:g} (picked" in result.stdout and "p99 <= 1 s: " in result.stdout


def _run_demo(bags: Path, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str],
                                                                         dict[str, Any]]:
    report_path = tmp_path / "report.json"
    result = _demo(["--bags", str(bags), "--rate", "20", "--tasks", "0", "--run-dir", str(tmp_path / "run"),
                    "--report-json", str(report_path), "--plot", str(tmp_path / "demo.png")], env)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, json.loads(report_path.read_text())


@pytest.mark.integration
def test_demo_maps_ros1_topic_names_that_ros2_refuses(tmp_path: Path, ros_env: dict[str, str]) -> None:
    """A hyphen and a missing leading slash are renamed by the documented rule; a name that two bag topics would
    share is skipped with the reason; the table says which is which."""
    bags = tmp_path / "bags"
    bags.mkdir()
    ros1_bag(bags / "ros1_names.bag", get_typestore(Stores.ROS1_NOETIC), [
        ("cmd-vel", "geometry_msgs/msg/Twist", 6), ("/status-text", "std_msgs/msg/String", 3),
        ("/battery", "std_msgs/msg/Float32", 4), ("battery", "std_msgs/msg/Float32", 2)])
    result, report = _run_demo(bags, tmp_path, ros_env)
    delivered = {row["bag_topic"]: (row["in_bag"], row["delivered"]) for row in report["streams"]}
    assert delivered == {"/cmd_vel": (6, 6), "/status_text": (3, 3), "/battery": (4, 4)}
    assert report["renamed"] == {"cmd-vel": "/cmd_vel", "/status-text": "/status_text"}
    assert "cmd-vel -> /cmd_vel" in result.stdout and "/status-text -> /status_text" in result.stdout
    assert report["skipped"]["battery"]["skipped"] == 2
    assert "battery (std_msgs/msg/Float32): 2 - recorded as 'battery', whose ROS 2 name /battery is taken" in (
        result.stdout)


@pytest.mark.integration
def test_demo_delivers_a_humble_bag_of_a_type_changed_since(tmp_path: Path, ros_env: dict[str, str]) -> None:
    """A Humble-era .db3 of sensor_msgs/Range (no `variance` then) is converted, delivered, and says so."""
    humble = get_typestore(Stores.ROS2_HUMBLE)
    ranges = [bytes(humble.serialize_cdr(sample(humble, "sensor_msgs/msg/Range", n), "sensor_msgs/msg/Range"))
              for n in range(8)]
    bags = tmp_path / "bags"
    bags.mkdir()
    humble_db3(bags / "humble_sonar", humble, [("/sonar", "sensor_msgs/msg/Range", ranges)])
    result, report = _run_demo(bags, tmp_path, ros_env)
    (row,) = report["streams"]
    assert (row["bag_topic"], row["in_bag"], row["published"], row["delivered"]) == ("/sonar", 8, 8, 8)
    assert row["content_mismatch"] == 0 and report["totals"]["missing"] == 0
    assert "variance new (default value)" in report["converted"]["/sonar"]
    assert "/sonar: converted from ROS 2 humble's definition" in result.stdout


@pytest.mark.integration
def test_demo_robots_can_do_their_tasks_through_ros_2_actions(tmp_path: Path, ros_env: dict[str, str]) -> None:
    """`--tasks actions:N`: each robot's bridge sends its tasks as NavigateToPose goals to a simulated navigator;
    the report shows every task done with the progress the coordinator saw."""
    bags = tmp_path / "bags"
    bags.mkdir()
    ros1_bag(bags / "one_robot.bag", get_typestore(Stores.ROS1_NOETIC), [("/battery", "std_msgs/msg/Float32", 5)])
    report_path = tmp_path / "report.json"
    result = _demo(["--bags", str(bags), "--rate", "20", "--tasks", "actions:4", "--run-dir", str(tmp_path / "run"),
                    "--report-json", str(report_path), "--plot", str(tmp_path / "demo.png")], ros_env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["tasks"] == {"submitted": 4, "done": 4} and report["task_executor"] == "actions"
    traces = report["task_progress"]
    assert [t["state"] for t in traces] == ["done"] * 4 and {t["robot_id"] for t in traces} == {"amr_000"}
    assert all(t["progress"][-1] == 1.0 for t in traces)
    assert any(0 < p < 1 for t in traces for p in t["progress"]), traces  # feedback became progress on the way
    assert "task progress, through ROS 2 actions (as the coordinator saw it):" in result.stdout
    bridge_log = (tmp_path / "run" / "robots" / "amr_000" / "robot_bridge.log").read_text()
    assert "tasks through actions: navigate -> /amr_000/navigate_to_pose (nav2_msgs/action/NavigateToPose)" in \
        bridge_log
