"""Bag topic names that ROS 1 took and ROS 2 refuses: mapped by the documented rule, or skipped with the reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from old_bags import ros1_bag
from rosbags.typesys import Stores, get_typestore

from swarm_bridge.cli import main
from swarm_bridge.replay import Bag, ReplayTypes, select_topics
from swarm_bridge.replay.names import is_ros2_topic, ros2_topic

NOETIC = get_typestore(Stores.ROS1_NOETIC)


@pytest.mark.parametrize(("recorded", "expected"), [
    ("/odom", "/odom"),
    ("/turtle1/cmd_vel", "/turtle1/cmd_vel"),
    ("cmd-vel", "/cmd_vel"),
    ("/status-text", "/status_text"),
    ("camera/image raw", "/camera/image_raw"),
    ("//a//b/", "/a/b"),
    ("/3d/points", "/_3d/points"),
    ("/sensors/ünï", "/sensors/_n_"),
    ("~scan", "/_scan"),
    ("-", "/_"),
    ("/", ""),
    ("", ""),
])
def test_the_rule(recorded: str, expected: str) -> None:
    assert ros2_topic(recorded) == expected
    assert expected == "" or is_ros2_topic(expected)


def test_a_ros1_bag_with_ros2_invalid_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ros1_bag(tmp_path / "names.bag", NOETIC, [
        ("cmd-vel", "geometry_msgs/msg/Twist", 3), ("/battery", "std_msgs/msg/Float32", 2),
        ("battery", "std_msgs/msg/Float32", 1), ("/", "std_msgs/msg/String", 1)])
    with Bag(path, ReplayTypes(installed=False)) as bag:
        topics = bag.topics
        assert sorted(topics) == ["/", "/battery", "/cmd_vel", "battery"]
        assert (topics["/cmd_vel"].recorded, topics["/cmd_vel"].skip) == ("cmd-vel", "")
        assert topics["/battery"].recorded == "" and not topics["/battery"].skip
        assert topics["battery"].skip.startswith("recorded as 'battery', whose ROS 2 name /battery is taken by the "
                                                 "bag's topic /battery")
        assert topics["/"].skip == "the name '/' has no valid ROS 2 form (docs/replay.md, topic names)"
        seen = Counter((m.topic, bool(m.skip)) for m in bag.messages())
        assert seen == {("/cmd_vel", False): 3, ("/battery", False): 2, ("battery", True): 1, ("/", True): 1}
        assert [m.topic for m in bag.messages(["/cmd_vel"])] == ["/cmd_vel"] * 3
        assert select_topics([bag], ["cmd-vel"]) == ["/cmd_vel"]  # asked for by its name in the bag
    assert main(["replay", str(path), "--list"]) == 0
    out = capsys.readouterr().out
    assert "  cmd-vel -> /cmd_vel  geometry_msgs/msg/Twist  3  publish" in out
    assert "  battery  std_msgs/msg/Float32  1  skip: recorded as 'battery'" in out
