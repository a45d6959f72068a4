"""Publish replayed bag messages into ROS as raw CDR, once per robot under `/<robot_id><topic>`, on the bag's clock.

A topic is published only when its type has a generated rclpy class (rclpy needs one to create the
publisher even for raw bytes); the others are skipped and counted, as are publishes that fail.
Latched / transient-local topics (e.g. /tf_static) get the transient_local QoS preset, the rest reliable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher

from swarm_bridge.replay import BagMessage, BagTopic, Due, ReplayTally
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.types import RosTypeError, message_class

__all__ = ["RosReplay", "robot_ids"]

log = logging.getLogger(__name__)

SETTLE_S = 0.5  # after every publisher saw a subscriber: time for the subscribers to match back


def robot_ids(count: int, prefix: str = "robot") -> list[str]:
    """`count` robot ids: robot_000, robot_001, ..."""
    return [f"{prefix}_{index:03d}" for index in range(count)]


class RosReplay:
    """Publishers for every replayable topic and robot on `node`; `run()` plays a schedule and counts."""

    def __init__(self, node: Node, topics: Iterable[BagTopic], robots: Sequence[str], tally: ReplayTally, *,
                 durable: bool = False) -> None:
        """`durable`: every topic transient_local (keeping 10,000), so a subscriber that matches late still gets
        what was published before; else only latched topics are."""
        self.node = node
        self.durable = durable
        self.robots = list(robots)
        self.tally = tally
        self._publishers: dict[str, list[Publisher]] = {}
        self._skip: dict[str, str] = {}
        for topic in topics:
            if topic.count == 0:  # nothing to publish, nothing to skip: no publisher waiting for a subscriber
                self._skip[topic.name] = "no messages"
                log.info("replay %s (%s): no messages in the bag; not published", topic.name, topic.ros_type)
                continue
            self._skip[topic.name] = topic.skip or self._add(topic)
            if self._skip[topic.name]:
                log.warning("replay %s (%s): skipped: %s", topic.name, topic.ros_type, self._skip[topic.name])

    def _add(self, topic: BagTopic) -> str:
        """Create the topic's publishers; returns why not ("" when created)."""
        try:
            cls = message_class(topic.ros_type)
        except RosTypeError as exc:
            return f"no rclpy message class: {exc}"
        qos = qos_preset("transient_local", depth=10000) if self.durable else qos_preset(
            "transient_local" if topic.latched else "reliable")
        try:
            self._publishers[topic.name] = [
                self.node.create_publisher(cls, f"/{robot}{topic.name}", qos) for robot in self.robots]
        except Exception as exc:  # rclpy refuses the name (e.g. too long once the robot id is in front)
            return f"cannot publish under /{self.robots[0]}{topic.name} ({type(exc).__name__}: {exc})"
        return ""

    @property
    def published_topics(self) -> list[str]:
        """The ROS topics this replay publishes, e.g. /robot_000/odom."""
        return sorted(p.topic_name for publishers in self._publishers.values() for p in publishers)

    def wait_for_subscribers(self, timeout_s: float, stop: threading.Event) -> list[str]:
        """Wait until every publisher has a subscriber, up to `timeout_s`, then SETTLE_S more (a publisher sees its
        subscriber before the subscriber has matched it back, and a volatile reader misses what comes before);
        returns the topics still without one."""
        deadline = time.monotonic() + timeout_s
        while True:
            lonely = [p.topic_name for publishers in self._publishers.values() for p in publishers
                      if p.get_subscription_count() == 0]
            if not lonely:
                stop.wait(SETTLE_S)
                return lonely
            if time.monotonic() >= deadline or stop.wait(0.05):
                return lonely

    def wait_for_acks(self, timeout_s: float) -> list[str]:
        """Wait up to `timeout_s` until every reliable subscriber acknowledged what was published (a process that
        exits at once can take its last messages' resends with it); returns the topics not fully acknowledged."""
        deadline = time.monotonic() + timeout_s
        behind = []
        for publishers in self._publishers.values():
            for publisher in publishers:
                left = max(0.0, deadline - time.monotonic())
                if not publisher.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))):
                    behind.append(publisher.topic_name)
        return behind

    def publish(self, message: BagMessage) -> int:
        """Publish one message for every robot (or count it skipped, with the reason); returns the publishes done."""
        self.tally.read(message.topic, message.ros_type)
        reason = message.skip or self._skip.get(message.topic, "topic not selected")
        if reason:
            self.tally.skipped(message.topic, message.ros_type, reason, len(self.robots))
            return 0
        done = 0
        for publisher in self._publishers[message.topic]:
            try:
                publisher.publish(message.cdr)
            except Exception as exc:  # rclpy raises its own RCLError types; a failed publish is counted
                self.tally.skipped(message.topic, message.ros_type, f"publish failed ({type(exc).__name__})")
            else:
                done += 1
        if done:
            self.tally.published(message.topic, message.ros_type, done)
        return done

    def run(self, plan: Iterable[Due], *, stop: threading.Event, total: int | None = None,
            progress: bool | None = None) -> bool:
        """Publish each planned message at its time; returns False when `stop` ended it early.

        `progress`: a tqdm bar on stderr (None: only when stderr is a terminal); `total` messages for it."""
        from tqdm import tqdm

        bar: Any = tqdm(total=total, unit="msg", desc="replay", disable=None if progress is None else not progress,
                        dynamic_ncols=True)
        start = time.monotonic()
        try:
            for due in plan:
                delay = start + due.at_s - time.monotonic()
                if (delay > 0 and stop.wait(delay)) or stop.is_set():
                    return False
                self.publish(due.message)
                bar.update(1)
            return True
        finally:
            bar.close()
