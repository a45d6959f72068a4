"""Replay planning without ROS: timing scaled by --rate, loops, topic selection, bags merged in time order."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore

from swarm_bridge.replay import (
    Bag,
    BagMessage,
    ReplayError,
    ReplayTally,
    ReplayTypes,
    check_rate,
    merged,
    open_bags,
    schedule,
    select_topics,
)

STORE = get_typestore(Stores.ROS2_KILTED)
TYPES = ReplayTypes(installed=False)


def write_bag(path: Path, messages: Sequence[tuple[str, str, int, object]]) -> Path:
    """A rosbag2 folder holding `messages` given as (topic, ros_type, stamp_ns, message)."""
    with Writer(path, version=9) as writer:
        connections = {}
        for topic, ros_type, stamp, message in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, ros_type, typestore=STORE)
            writer.write(connections[topic], stamp, STORE.serialize_cdr(message, ros_type))
    return path


def string(text: str) -> object:
    return STORE.types["std_msgs/msg/String"](data=text)


def int32(value: int) -> object:
    return STORE.types["std_msgs/msg/Int32"](data=value)


def _messages(*offsets_s: float) -> list[BagMessage]:
    return [BagMessage("/a", "std_msgs/msg/String", int(s * 1e9), b"") for s in offsets_s]


def test_rate_scales_the_recorded_offsets() -> None:
    play = _messages(0.0, 1.0, 3.0)
    assert [d.at_s for d in schedule(lambda: play, rate=1)] == [0.0, 1.0, 3.0]
    assert [d.at_s for d in schedule(lambda: play, rate=2)] == [0.0, 0.5, 1.5]
    assert [d.at_s for d in schedule(lambda: play, rate=0.5)] == [0.0, 2.0, 6.0]


def test_loops_follow_each_other_one_period_apart() -> None:
    play = _messages(0.0, 1.0, 3.0)  # span 3 s, mean gap 1.5 s: period 4.5 s
    due = list(schedule(lambda: play, rate=3, loops=2))
    assert [d.loop for d in due] == [0, 0, 0, 1, 1, 1]
    assert [d.at_s for d in due] == pytest.approx([0.0, 1 / 3, 1.0, 1.5, 1.5 + 1 / 3, 2.5])
    endless = list(itertools.islice(schedule(lambda: play, rate=1, loops=None), 10))
    assert [d.loop for d in endless] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
    assert all(a.at_s < b.at_s for a, b in itertools.pairwise(endless))


def test_an_empty_play_ends_even_an_endless_loop() -> None:
    assert list(schedule(lambda: [], rate=1, loops=None)) == []


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf])
def test_rate_must_be_positive_and_finite(rate: float) -> None:
    with pytest.raises(ReplayError, match="--rate"):
        check_rate(rate)
    with pytest.raises(ReplayError, match="--rate"):
        list(schedule(lambda: _messages(0.0), rate=rate))


def test_bags_play_side_by_side_from_their_own_start(tmp_path: Path) -> None:
    old = write_bag(tmp_path / "old", [("/a", "std_msgs/msg/String", 1_000_000_000 + i * 300_000_000, string(f"a{i}"))
                                       for i in range(4)])
    new = write_bag(tmp_path / "new", [("/b", "std_msgs/msg/Int32", 9_000_000_000_000 + i * 500_000_000, int32(i))
                                       for i in range(3)])
    bags = open_bags([old, new], TYPES)
    try:
        order = [(m.topic, m.offset_ns) for m in merged(bags, select_topics(bags))]
    finally:
        for bag in bags:
            bag.close()
    assert order == [("/a", 0), ("/b", 0), ("/a", 300_000_000), ("/b", 500_000_000), ("/a", 600_000_000),
                     ("/a", 900_000_000), ("/b", 1_000_000_000)]


def test_topic_selection(tmp_path: Path) -> None:
    path = write_bag(tmp_path / "bag", [("/odom", "std_msgs/msg/String", 1, string("x")),
                                        ("/tf", "std_msgs/msg/Int32", 2, int32(1)),
                                        ("/tf", "std_msgs/msg/Int32", 3, int32(2))])
    with Bag(path, TYPES) as bag:
        assert select_topics([bag]) == ["/odom", "/tf"]
        assert select_topics([bag], ["/tf"]) == ["/tf"]
        assert [m.topic for m in merged([bag], ["/tf"])] == ["/tf", "/tf"]
        with pytest.raises(ReplayError, match=r"--topics /odm: is in none of the bags.*did you mean '/odom'"):
            select_topics([bag], ["/tf", "/odm"])


def test_a_topic_with_two_types_in_two_bags_is_refused(tmp_path: Path) -> None:
    first = write_bag(tmp_path / "one", [("/x", "std_msgs/msg/String", 1, string("x"))])
    second = write_bag(tmp_path / "two", [("/x", "std_msgs/msg/Int32", 1, int32(1))])
    with Bag(first, TYPES) as a, Bag(second, TYPES) as b, pytest.raises(
            ReplayError, match=r"topic /x: has type std_msgs/msg/String in one bag and std_msgs/msg/Int32 in .*two"):
        select_topics([a, b])


def test_tally_counts_per_topic_and_reason() -> None:
    tally = ReplayTally()
    tally.read("/a", "std_msgs/msg/String")
    tally.published("/a", "std_msgs/msg/String", 2)
    tally.read("/b", "turtlesim/msg/Pose")
    tally.skipped("/b", "turtlesim/msg/Pose", "no rclpy message class", 2)
    assert tally.as_dict() == {
        "/a": {"ros_type": "std_msgs/msg/String", "read": 1, "published": 2, "skipped": 0, "reasons": {}},
        "/b": {"ros_type": "turtlesim/msg/Pose", "read": 1, "published": 0, "skipped": 2,
               "reasons": {"no rclpy message class": 2}},
    }
    table = tally.table()
    assert "skipped 2: no rclpy message class" in table and table.endswith("total: 2 published, 2 skipped")
