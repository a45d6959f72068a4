"""The fleet_coordinator node as ros2 run starts it: task requests on a ROS topic end as tasks done by robots."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rclpy
from coordinator_fleet import CAPABILITIES, TaskLog, coordinator_doc, wait_for, write_config

from swarm_bridge.brokers import Kafka
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.sim.kafka_fleet import KafkaFleet
from swarm_bridge.sim.task_robots import TaskRobot

pytestmark = pytest.mark.integration

NODE = [sys.executable, "-m", "swarm_bridge.nodes", "fleet_coordinator"]


def test_tasks_from_a_ros_topic_are_done(kafka: Kafka, tmp_path: Path, ros_context: Any,
                                         ros_env: dict[str, str]) -> None:
    from std_msgs.msg import String

    doc = coordinator_doc(kafka, tmp_path)
    config = validate_config(doc, CoordinatorConfig)
    path = write_config(doc, tmp_path / "coordinator.yaml")
    proc = subprocess.Popen([*NODE, "--config", str(path), "--instance-id", "ros"], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sim = log = None
    try:
        wait_for(lambda: config.topics.events in _topics(kafka), 60, "the coordinator's topics")
        log = TaskLog(kafka, config)
        sim = KafkaFleet(config, [TaskRobot("drone_1", "drone", CAPABILITIES["drone"])]).start()
        node = rclpy.create_node("task_source", context=ros_context)
        publisher = node.create_publisher(String, "/tasks/submit", qos_preset("reliable"))
        executor = make_executor(ros_context)
        assert spin_until(executor, [node], done=lambda: publisher.get_subscription_count() > 0, timeout_s=30)
        publisher.publish(String(data=json.dumps({"task_id": "survey-7", "kind": "inspect"})))
        publisher.publish(String(data="not json"))
        wait_for(lambda: len(log.terminal()) >= 2, 60, "both requests to end")
        node.destroy_node()
        last = log.last()
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        if sim is not None:
            sim.stop()
        if log is not None:
            log.close()
    assert last["survey-7"].task.state is TaskState.DONE and last["survey-7"].task.robot_id == "drone_1"
    (rejected,) = [e.task for e in last.values() if e.task.state is TaskState.REJECTED]
    assert "not JSON" in rejected.reason
    assert proc.returncode == 0, output
    assert "2 task requests from ROS, 2 forwarded, 0 failed, 0 unconfirmed" in output


def _topics(kafka: Kafka) -> set[str]:
    from confluent_kafka.admin import AdminClient

    return set(AdminClient({"bootstrap.servers": kafka.bootstrap}).list_topics(timeout=10).topics)
