"""Replay reads every shared bag: per-topic counts as the bags' README lists them, CDR as rosbags makes it."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rosbags.convert.converter import STATIC_MSGTYPE_RENAMES, migrate_bytes
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from swarm_bridge.replay import Bag, ReplayTypes, find_bags

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
                target = STATIC_MSGTYPE_RENAMES.get(connection.msgtype, connection.msgtype)
                if target not in kilted.fielddefs:  # as rosbags-convert does: ROS 1 definition minus the header
                    added = get_types_from_msg(reader.typestore.generate_msgdef(connection.msgtype, 2)[0], target)
                    kilted.register({k: v for k, v in added.items() if k not in kilted.fielddefs})
            per_topic: Counter[str] = Counter()
            ours = bag.messages()
            for connection, _, raw in reader.messages():
                message = next(ours)
                assert message.topic == connection.topic and not message.skip
                per_topic[message.topic] += 1
                if per_topic[message.topic] > 200:
                    continue
                target = STATIC_MSGTYPE_RENAMES.get(connection.msgtype, connection.msgtype)
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
