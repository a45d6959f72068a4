"""Replay reads every shared bag: per-topic counts as the bags' README lists them, CDR as rosbags makes it."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rosbags.convert.converter import migrate_bytes
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from swarm_bridge.replay import Bag, ReplayTypes, find_bags
from swarm_bridge.replay.bag import ROS1_COUNTERPARTS, ROS1_RENAMES

REPO = Path(__file__).resolve().parents[3]
MSG_EXTRA = REPO / "msg_extra"


@dataclass(frozen=True)
class ListedTopic:
    """A row of a bag's table in the README: count, and whether rosbags decoded it with the standard types."""

    count: int
    needs_definitions: bool


def _readme(bags: Path) -> dict[str, tuple[Path, dict[str, ListedTopic]]]:
    """README sections: bag name -> (path to open, {topic: ListedTopic})."""
    listed: dict[str, tuple[Path, dict[str, ListedTopic]]] = {}
    for section in re.split(r"^### ", (bags / "README.md").read_text(), flags=re.MULTILINE)[1:]:
        name = section.split("\n", 1)[0].strip()
        opened = re.search(r"^- Open: `([^`]+)`", section, re.MULTILINE)
        assert opened, f"README section {name} has no '- Open:' line"
        rows = re.findall(r"^\| `(/[^`]*)` \| `([^`]+)` \| (\d+) \| ([^|]*)\|", section, re.MULTILINE)
        listed[name] = (bags / opened.group(1), {
            topic: ListedTopic(int(count), "type unknown" in status) for topic, _, count, status in rows})
    assert listed, "README.md lists no bags"
    return listed


def _read(bag: Bag) -> tuple[Counter[str], Counter[str]]:
    replayable: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for message in bag.messages():
        (skipped if message.skip else replayable)[message.topic] += 1
    return replayable, skipped


def test_every_shared_bag_reads_with_the_readme_counts(shared_bags: Path) -> None:
    types = ReplayTypes(installed=False)  # only Kilted's standard types: the README's unknown ones stay unknown
    listed = _readme(shared_bags)
    assert sorted(p for p, _ in listed.values()) == find_bags(shared_bags)
    wrong = []
    for name, (path, topics) in sorted(listed.items()):
        with Bag(path, types) as bag:
            replayable, skipped = _read(bag)
            assert sorted(bag.topics) == sorted(topics), name
            for topic, row in topics.items():
                want = (0, row.count) if row.needs_definitions else (row.count, 0)
                got = (replayable[topic], skipped[topic])
                if got != want or bag.topics[topic].count != row.count:
                    wrong.append(f"{name} {topic}: (replayable, skipped) {got}, want {want}; metadata count "
                                 f"{bag.topics[topic].count}")
                if row.needs_definitions:
                    assert "unknown type" in bag.topics[topic].skip and "--msg-dir" in bag.topics[topic].skip
    assert not wrong, "\n".join(wrong)


def test_msg_dir_definitions_make_the_unknown_types_replayable(shared_bags: Path) -> None:
    types = ReplayTypes(msg_dirs=[MSG_EXTRA], installed=False)
    checked = 0
    for path, topics in _readme(shared_bags).values():
        unknown = {t: row.count for t, row in topics.items() if row.needs_definitions}
        if not unknown:
            continue
        store = types.typestore()
        with Bag(path, types) as bag:
            replayable, skipped = _read(bag)
            assert not skipped
            for topic, count in unknown.items():
                assert replayable[topic] == count
                ros_type = bag.topics[topic].ros_type
                for message in bag.messages([topic]):
                    store.deserialize_cdr(message.cdr, ros_type)  # raises when the payload does not fit
                    checked += 1
    assert checked == sum(row.count for _, ts in _readme(shared_bags).values() for row in ts.values()
                          if row.needs_definitions) > 0


def test_ros1_messages_become_the_cdr_rosbags_makes(shared_bags: Path) -> None:
    """Byte-level ROS 1 -> CDR equals rosbags' deserialize -> migrate -> serialize into Kilted's types."""
    types = ReplayTypes(installed=False)
    ros1 = [p for p in find_bags(shared_bags) if p.suffix == ".bag"]
    assert len(ros1) >= 5
    compared: Counter[str] = Counter()
    for path in ros1:
        kilted = get_typestore(Stores.ROS2_KILTED)
        with Bag(path, types) as bag, AnyReader([path]) as reader:
            for connection in reader.connections:
                target = ROS1_RENAMES.get(connection.msgtype, connection.msgtype)
                if target not in kilted.fielddefs:  # as rosbags-convert does: ROS 1 definition minus the header
                    added = get_types_from_msg(reader.typestore.generate_msgdef(connection.msgtype, 2)[0], target)
                    kilted.register({k: v for k, v in added.items() if k not in kilted.fielddefs})
            per_topic: Counter[str] = Counter()
            ours = bag.messages()
            for connection, _, raw in reader.messages():
                message = next(ours)
                assert message.topic == connection.topic and not message.skip
                per_topic[message.topic] += 1
                if per_topic[message.topic] > 200 or connection.msgtype in ROS1_COUNTERPARTS:  # compared below
                    continue
                target = ROS1_RENAMES.get(connection.msgtype, connection.msgtype)
                reference = migrate_bytes(reader.typestore, kilted, connection.msgtype, target, {}, raw,
                                          src_is2=False, dst_is2=True)
                assert message.ros_type == target
                assert message.cdr == bytes(reference), f"{path} {message.topic}"
                compared[target] += 1
            assert next(ours, None) is None
    assert compared["tf2_msgs/msg/TFMessage"] > 0 and compared["sensor_msgs/msg/Imu"] > 0
    assert len(compared) >= 15


def test_latched_topics_are_marked(shared_bags: Path) -> None:
    types = ReplayTypes(installed=False)
    with Bag(shared_bags / "evo_nav2_turtlebot_mcap/nav2_turtlebot.mcap", types) as bag:
        assert bag.topics["/tf_static"].latched and not bag.topics["/tf"].latched
    with Bag(shared_bags / "srs_joy_teleop_diagnostics_ros1/robot_bag.bag", types) as bag:
        assert bag.topics["/tf_static"].latched and not bag.topics["/joy"].latched


def test_ros1_rosout_becomes_ros2_log_records_field_by_field(shared_bags: Path) -> None:
    """/rosout (rosgraph_msgs/Log, ROS 1 only) is replayed as rcl_interfaces/msg/Log, as ros1_bridge pairs them."""
    types = ReplayTypes(installed=False)
    store = types.typestore()
    levels = {1: 10, 2: 20, 4: 30, 8: 40, 16: 50}
    checked = 0
    for name in ("srs_joy_teleop_diagnostics_ros1/robot_bag.bag", "webviz_turtlesim_two_turtles_ros1/example.bag"):
        path = shared_bags / name
        with Bag(path, types) as bag, AnyReader([path]) as reader:
            topic = bag.topics["/rosout"]
            assert (topic.ros_type, topic.skip) == ("rcl_interfaces/msg/Log", "")
            assert "header -> stamp" in topic.converted and "topics dropped" in topic.converted
            ours = list(bag.messages(["/rosout"]))
            theirs: list[Any] = [reader.deserialize(raw, c.msgtype) for c, _, raw in
                      reader.messages([c for c in reader.connections if c.topic == "/rosout"])]
            assert len(ours) == len(theirs) == topic.count > 0
            for message, ros1 in zip(ours, theirs, strict=True):
                log: Any = store.deserialize_cdr(message.cdr, "rcl_interfaces/msg/Log")
                assert (log.stamp.sec, log.stamp.nanosec) == (ros1.header.stamp.sec, ros1.header.stamp.nanosec)
                assert log.level == levels[ros1.level]
                assert (log.name, log.msg, log.file, log.function, log.line) == (
                    ros1.name, ros1.msg, ros1.file, ros1.function, ros1.line)
                checked += 1
    assert checked == 13 + 10


def test_ros1_turtlesim_messages_replay_as_ros2_turtlesim_msgs_field_by_field(shared_bags: Path) -> None:
    """ROS 1 turtlesim/Color and turtlesim/Pose are published as ROS 2's turtlesim_msgs types (same fields)."""
    path = shared_bags / "webviz_turtlesim_two_turtles_ros1/example.bag"
    types = ReplayTypes(msg_dirs=[MSG_EXTRA], installed=False)  # turtlesim_msgs as msg_extra/ defines it
    store = types.typestore()
    fields = {"turtlesim_msgs/msg/Color": ("r", "g", "b"),
              "turtlesim_msgs/msg/Pose": ("x", "y", "theta", "linear_velocity", "angular_velocity")}
    checked = 0
    with Bag(path, types) as bag, AnyReader([path]) as reader:
        for name, ros_type in {"/turtle1/color_sensor": "turtlesim_msgs/msg/Color",
                               "/turtle2/pose": "turtlesim_msgs/msg/Pose"}.items():
            topic = bag.topics[name]
            assert (topic.ros_type, topic.skip) == (ros_type, "")
            assert topic.converted == f"ROS 1 {ros_type.replace('_msgs', '')} under its ROS 2 name, same fields"
            ours = list(bag.messages([name]))
            theirs: list[Any] = [reader.deserialize(raw, c.msgtype) for c, _, raw in
                                 reader.messages([c for c in reader.connections if c.topic == name])]
            assert len(ours) == len(theirs) == topic.count > 1000
            for message, ros1 in zip(ours, theirs, strict=True):
                ros2: Any = store.deserialize_cdr(message.cdr, ros_type)
                assert [getattr(ros2, f) for f in fields[ros_type]] == [getattr(ros1, f) for f in fields[ros_type]]
                checked += 1
    assert checked == 1351 + 1344


def test_a_ros1_log_level_outside_ros1s_scale_is_refused_naming_it() -> None:
    ros1 = get_typestore(Stores.ROS1_NOETIC)
    kilted = get_typestore(Stores.ROS2_KILTED)
    log_type = ros1.types["rosgraph_msgs/msg/Log"]
    header = ros1.types["std_msgs/msg/Header"](seq=1, stamp=ros1.types["builtin_interfaces/msg/Time"](sec=5, nanosec=6),
                                               frame_id="")
    convert = ROS1_COUNTERPARTS["rosgraph_msgs/msg/Log"].convert
    good = ros1.serialize_ros1(log_type(header=header, level=4, name="n", msg="m", file="f", function="g", line=7,
                                        topics=["/x"]), "rosgraph_msgs/msg/Log")
    converted: Any = kilted.deserialize_cdr(convert(ros1, kilted, bytes(good)), "rcl_interfaces/msg/Log")
    assert converted.level == 30
    bad = ros1.serialize_ros1(log_type(header=header, level=3, name="n", msg="m", file="f", function="g", line=7,
                                       topics=[]), "rosgraph_msgs/msg/Log")
    with pytest.raises(ValueError, match="log level 3 is none of ROS 1's"):
        convert(ros1, kilted, bytes(bad))
