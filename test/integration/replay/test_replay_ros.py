"""`swarm-bridge replay` into real rclpy: every robot's subscriber gets every bag message, byte for byte."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import rclpy

from swarm_bridge.replay import Bag, BagMessage, BagTopic, ReplayTally, ReplayTypes
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.replay import RosReplay, robot_ids
from swarm_bridge.ros.spin import make_executor, spin_until

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "swarm_bridge.cli"]
BAG = "polymath_cmd_vel_mcap/cmd_vel_only.mcap"
TOPIC = "/vehicle/cmd_vel"


def test_two_robots_receive_every_message_byte_equal(shared_bags: Path, tmp_path: Path, ros_context: Any,
                                                      ros_env: dict[str, str]) -> None:
    with Bag(shared_bags / BAG, ReplayTypes(installed=False)) as bag:
        expected = [m.cdr for m in bag.messages()]
    assert len(expected) == 51
    from geometry_msgs.msg import TwistStamped

    node = rclpy.create_node("replay_sink", context=ros_context)
    received: dict[str, list[bytes]] = {robot: [] for robot in robot_ids(2)}
    for robot, sink in received.items():
        node.create_subscription(TwistStamped, f"/{robot}{TOPIC}", sink.append, qos_preset("reliable"), raw=True)
    report = tmp_path / "report.json"
    proc = subprocess.Popen([*CLI, "replay", str(shared_bags / BAG), "--robots", "2", "--rate", "4", "--wait", "20",
                             "--no-progress", "--report-json", str(report)],
                            env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        done = spin_until(make_executor(ros_context), [node], timeout_s=60,
                          done=lambda: all(len(r) >= len(expected) for r in received.values()))
        output, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        node.destroy_node()
    assert proc.returncode == 0, output
    assert done, f"received {[len(r) for r in received.values()]} of {len(expected)}; replay said:\n{output}"
    for robot, got in received.items():
        assert got == expected, robot
    assert json.loads(report.read_text()) == {TOPIC: {"ros_type": "geometry_msgs/msg/TwistStamped", "read": 51,
                                                      "published": 102, "skipped": 0, "reasons": {}}}
    assert "total: 102 published, 0 skipped" in output


def test_unpublishable_topics_are_counted_not_dropped(ros_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    node = rclpy.create_node("replay_source", context=ros_context)
    tally = ReplayTally()
    topics = [BagTopic("/mode", "std_msgs/msg/String", 1), BagTopic("/pose", "vendor_robot_msgs/msg/Pose", 2),
              BagTopic("/drive", "ackermann_msgs/msg/Unknown", 1, skip="unknown type ackermann_msgs/msg/Unknown"),
              BagTopic("/events/write_split", "rosbag2_interfaces/msg/WriteSplitEvent", 0)]
    try:
        with caplog.at_level(logging.INFO, logger="swarm_bridge.ros.replay"):
            replay = RosReplay(node, topics, robot_ids(3, "amr"), tally)
        assert replay.published_topics == ["/amr_000/mode", "/amr_001/mode", "/amr_002/mode"]
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert [w.split(" ")[1] for w in warned] == ["/pose", "/drive"]  # an empty topic is no warning's business
        cdr = bytes([0, 1, 0, 0, 5, 0, 0, 0]) + b"auto\x00"
        for message in [BagMessage("/mode", "std_msgs/msg/String", 0, cdr),
                        BagMessage("/pose", "vendor_robot_msgs/msg/Pose", 1, b"\x00\x01\x00\x00" + bytes(20)),
                        BagMessage("/pose", "vendor_robot_msgs/msg/Pose", 2, b"\x00\x01\x00\x00" + bytes(20)),
                        BagMessage("/drive", "ackermann_msgs/msg/Unknown", 3, b"", "unknown type x")]:
            replay.publish(message)
        assert replay.run([], stop=threading.Event(), progress=False)
    finally:
        node.destroy_node()
    counts = tally.as_dict()
    assert counts["/mode"]["published"] == 3 and counts["/mode"]["skipped"] == 0
    assert counts["/pose"]["read"] == 2 and counts["/pose"]["skipped"] == 6
    assert "no rclpy message class" in next(iter(counts["/pose"]["reasons"]))
    assert counts["/drive"] == {"ros_type": "ackermann_msgs/msg/Unknown", "read": 1, "published": 0, "skipped": 3,
                                "reasons": {"unknown type x": 3}}


def test_every_publishable_bag_type_fits_its_rclpy_class(shared_bags: Path) -> None:
    """The CDR replay publishes (ROS 1 converted, rosbag2 as recorded) reads the same in rclpy as in rosbags."""
    from rclpy.serialization import deserialize_message

    from swarm_bridge.replay import find_bags
    from swarm_bridge.ros.types import RosTypeError, message_class

    types = ReplayTypes()  # with the installed interfaces, e.g. msg_extra's ackermann_msgs and gazebo_msgs
    store = types.typestore()
    checked: set[str] = set()

    def canonical(cdr: bytes) -> bytes:
        return bytes(store.serialize_cdr(store.deserialize_cdr(cdr, message.ros_type), message.ros_type))

    for path in find_bags(shared_bags):
        with Bag(path, types) as bag:
            seen: dict[str, int] = {}
            for message in bag.messages():
                if message.skip or seen.get(message.topic, 0) >= 20:
                    continue
                try:
                    cls = message_class(message.ros_type)
                except RosTypeError:
                    continue
                seen[message.topic] = seen.get(message.topic, 0) + 1
                # rclpy reads the replayed bytes as it reads rosbags' own re-serialization of them (the bag's
                # CDR may carry garbage padding, so bytes are not compared)
                ours = deserialize_message(message.cdr, cls)
                assert ours == deserialize_message(canonical(message.cdr), cls), f"{path} {message.topic}"
                checked.add(message.ros_type)
    assert {"tf2_msgs/msg/TFMessage", "visualization_msgs/msg/Marker", "ackermann_msgs/msg/AckermannDriveStamped",
            "gazebo_msgs/msg/PerformanceMetrics", "sensor_msgs/msg/Imu", "nav_msgs/msg/Odometry"} <= checked
