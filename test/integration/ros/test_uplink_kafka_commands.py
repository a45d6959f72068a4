"""A robot on a Kafka uplink reads commands down: those sent before its first start (within `commands.lookback_s`)
still reach it, a restart goes on from its committed offset, and it reads only its own partition of the command
topic. Real Kafka, the real robot_bridge process, real rclpy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from swarm_bridge.brokers import Kafka
from swarm_bridge.codec import Envelope, encode_json
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.transport import TopicSpec, ensure_kafka_topics

pytestmark = pytest.mark.integration

NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
ROBOT = "amr_042"
FLEET = "cmd_test"
PARTITIONS = 4
LOOKBACK_S = 600
TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"


def _command(robot: str, command_id: str, stream: str) -> bytes:
    body = {"task_id": f"task-{command_id}", "command_id": command_id, "robot_id": robot, "kind": "navigate",
            "deadline": {"sec": int(time.time()) + 3600, "nanosec": 0}}
    return encode_json(Envelope(robot_id=robot, stream=stream, seq=1, stamp_ns=time.time_ns(),
                                ros_type=TASK_COMMAND, body=body))


def _others(count: int) -> list[str]:
    """Robots on each of the other partitions (one each)."""
    mine = shard_of(ROBOT, count)
    found: dict[int, str] = {}
    for i in range(1000):
        robot = f"amr_{i:03d}"
        found.setdefault(shard_of(robot, count), robot)
    return [robot for partition, robot in sorted(found.items()) if partition != mine]


class Commands:
    """Sends commands keyed by robot id with Kafka's own partitioner, as the coordinator does."""

    def __init__(self, kafka: Kafka, topic: str, stream: str) -> None:
        self.topic, self.stream = topic, stream
        self.producer = Producer({"bootstrap.servers": f"127.0.0.1:{kafka.port}", "partitioner": "murmur2_random"})

    def send(self, robot: str, command_id: str, *, age_s: float = 0.0) -> None:
        stamp_ms = int((time.time() - age_s) * 1000)
        self.producer.produce(self.topic, key=robot.encode(), value=_command(robot, command_id, self.stream),
                              timestamp=stamp_ms)
        assert self.producer.flush(30) == 0


def _start(tmp_path: Path, kafka: Kafka, stream: str, env: dict[str, str]) -> subprocess.Popen[str]:
    config = tmp_path / "robot_bridge.yaml"
    config.write_text(yaml.safe_dump({
        "robot_id": ROBOT, "fleet": FLEET,
        "uplink": {"kind": "kafka", "port": kafka.port},
        "spool": {"path": str(tmp_path / "spool.db")},
        "commands": {"lookback_s": LOOKBACK_S},
        "routes": [{"topic": f"/{ROBOT}/task_command", "type": TASK_COMMAND, "direction": "down",
                    "channel": "command", "stream": stream, "qos": "transient_local", "format": "json"}],
    }))
    return subprocess.Popen([*NODE, "--config", str(config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    return output


def _committed(kafka: Kafka, topic: str) -> dict[int, int]:
    """The robot's committed offset per partition of `topic` (negative: none)."""
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{kafka.port}", "group.id": f"{FLEET}-{ROBOT}.{topic}",
                         "enable.auto.commit": False})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


def test_commands_sent_before_the_first_start_arrive_and_only_the_own_partition_is_read(
        tmp_path: Path, kafka: Kafka, ros_context: Any, ros_env: dict[str, str]) -> None:
    from swarm_bridge_msgs.msg import TaskCommand

    stream = f"cmd_{uuid.uuid4().hex[:8]}"
    topic = f"fleet.command.{stream}"
    ensure_kafka_topics(f"127.0.0.1:{kafka.port}", [topic], partitions=PARTITIONS)
    commands = Commands(kafka, topic, stream)
    others = _others(PARTITIONS)
    assert len(others) == PARTITIONS - 1
    commands.send(ROBOT, "too-old", age_s=2 * LOOKBACK_S)  # written before the lookback: past use
    commands.send(ROBOT, "before-start")  # issued while the robot was off, deadline an hour ahead
    for robot in others:
        commands.send(robot, f"before-{robot}")

    node = rclpy.create_node("command_sink", context=ros_context)
    received: list[str] = []
    # transient_local, as the route: what the bridge published before this reader matched is still delivered
    qos = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(TaskCommand, f"/{ROBOT}/task_command", lambda m: received.append(m.command_id), qos)
    executor = make_executor(ros_context)
    proc = _start(tmp_path, kafka, stream, ros_env)
    try:
        assert spin_until(executor, [node], done=lambda: "before-start" in received, timeout_s=90), received
        commands.send(ROBOT, "while-running")
        for robot in others:
            commands.send(robot, f"while-{robot}")
        assert spin_until(executor, [], done=lambda: "while-running" in received, timeout_s=60), received
    finally:
        output = _stop(proc)
    assert received == ["before-start", "while-running"], output
    mine = shard_of(ROBOT, PARTITIONS)
    assert f"{topic} partition {mine} of {PARTITIONS} (key {ROBOT})" in output
    committed = _committed(kafka, topic)
    assert committed[mine] == 3  # too-old, before-start, while-running: all behind the robot
    assert all(offset < 0 for partition, offset in committed.items() if partition != mine), committed

    # a restart goes on from the committed offset: nothing again, only what came since
    commands.send(ROBOT, "after-restart")
    received.clear()
    proc = _start(tmp_path, kafka, stream, ros_env)
    try:
        assert spin_until(executor, [], done=lambda: "after-restart" in received, timeout_s=90), received
    finally:
        output = _stop(proc)
        node.destroy_node()
    assert received == ["after-restart"], output
    assert "from its committed offset" in output


def test_a_robot_follows_its_key_when_the_command_topic_grows(
        tmp_path: Path, kafka: Kafka, ros_context: Any, ros_env: dict[str, str]) -> None:
    """A gateway started first makes the command topic with one partition; the coordinator grows it to the
    fleet's shard count. A running robot then reads the partition its key moved to, without a restart."""
    from swarm_bridge_msgs.msg import TaskCommand

    stream = f"cmd_{uuid.uuid4().hex[:8]}"
    topic = f"fleet.command.{stream}"
    ensure_kafka_topics(f"127.0.0.1:{kafka.port}", [topic], partitions=1)
    grown = shard_of(ROBOT, PARTITIONS)
    assert grown != 0, "pick a robot whose key leaves partition 0 when the topic grows"
    commands = Commands(kafka, topic, stream)

    node = rclpy.create_node("command_sink", context=ros_context)
    received: list[str] = []
    qos = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(TaskCommand, f"/{ROBOT}/task_command", lambda m: received.append(m.command_id), qos)
    executor = make_executor(ros_context)
    proc = _start(tmp_path, kafka, stream, ros_env)
    try:
        commands.send(ROBOT, "on-one-partition")
        assert spin_until(executor, [node], done=lambda: "on-one-partition" in received, timeout_s=90), received
        ensure_kafka_topics(f"127.0.0.1:{kafka.port}", [TopicSpec(topic, PARTITIONS, sharded=True)])
        # a producer that knows the new count puts the robot's next command in the partition its key moved to
        commands = Commands(kafka, topic, stream)
        commands.send(ROBOT, "after-growth")
        assert spin_until(executor, [], done=lambda: "after-growth" in received, timeout_s=90), received
    finally:
        output = _stop(proc)
        node.destroy_node()
    assert received == ["on-one-partition", "after-growth"], output
    assert f"{topic} partition {grown} of {PARTITIONS} (key {ROBOT})" in output
