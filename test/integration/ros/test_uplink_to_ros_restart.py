"""A command sent while the robot bridge was down reaches ROS after its restart: the broker keeps it in the robot's
persistent MQTT session and hands it over right after the CONNACK, so the down route must be listening by then,
and (volatile QoS, the shipped `reliable`) hold it until the restarted bridge's ROS publisher has matched the robot's
subscriber. Real Mosquitto, the real robot_bridge process, real rclpy."""

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

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.codec import Envelope, encode_json
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.transport import MqttLink

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
ROBOT = "amr_042"
TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"


def _config(tmp_path: Path, port: int, fleet: str, qos: str) -> Path:
    """The shipped config with only its task_command down route, on QoS preset `qos`: the shipped `reliable`
    (volatile: a reader that matches after a publish never gets it, so the route holds the command until its
    publisher matched one) or transient_local (the writer keeps it for late readers)."""
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["fleet"], data["robot_id"] = fleet, ROBOT
    data["uplink"]["port"] = port
    data["spool"] = {"path": str(tmp_path / "spool.db"), "max_mb": 16}
    (down,) = [r for r in data["routes"] if r.get("direction") == "down"]
    data["routes"] = [{**down, "qos": qos, "format": "json"}]
    path = tmp_path / "robot_bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _command(seq: int, command_id: str) -> bytes:
    body = {"task_id": f"task-{seq}", "command_id": command_id, "robot_id": ROBOT, "kind": "pick"}
    return encode_json(Envelope(ROBOT, "task_command", seq, time.time_ns(), TASK_COMMAND, body))


def _start(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*NODE, "--config", str(config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output[-3000:]
    return output


@pytest.mark.parametrize("qos", ["reliable", "transient_local"])
def test_a_command_sent_while_the_bridge_was_down_reaches_ros_after_its_restart(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str], qos: str) -> None:
    from swarm_bridge_msgs.msg import TaskCommand

    fleet = f"restart_{uuid.uuid4().hex[:8]}"  # a robot session of its own on the session's broker
    topic = f"swarm/{fleet}/{ROBOT}/command/task_command"
    config = _config(tmp_path, mosquitto.port, fleet, qos)
    node = rclpy.create_node("command_sink", context=ros_context)
    received: list[str] = []
    node.create_subscription(TaskCommand, f"/{ROBOT}/task_command", lambda m: received.append(m.command_id),
                             qos_preset(qos))  # the route's own preset on the robot's side too
    executor = make_executor(ros_context)
    coordinator = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id=f"coordinator-{fleet}")
    coordinator.connect()
    proc = _start(config, ros_env)
    outputs: list[str] = []
    try:
        # first run: a live command comes down, so the robot's session holds its subscription (sent again until
        # one arrives: the bridge may not have subscribed yet when the first one is sent)
        live = 0
        while not received and live < 60:
            coordinator.send(topic, b"", _command(live, f"live-{live}"), qos=1)
            assert coordinator.flush(10) == 0
            spin_until(executor, [node] if live == 0 else [], done=lambda: bool(received), timeout_s=1.0)
            live += 1
        assert received, "no live command reached ROS in the first run"
        outputs.append(_stop(proc))

        # while the bridge is down: the broker acknowledges and keeps the command for the robot's session
        unsubscribed = coordinator.unsubscribed
        coordinator.send(topic, b"", _command(1000, "while-down"), qos=1)
        assert coordinator.flush(10) == 0
        assert coordinator.unsubscribed == unsubscribed, "the broker had no subscriber: the session was not kept"

        proc = _start(config, ros_env)
        spin_until(executor, [], done=lambda: "while-down" in received, timeout_s=60)
    finally:
        if proc.returncode is None:
            outputs.append(_stop(proc))
        coordinator.close()
        node.destroy_node()
    output = outputs[-1]
    assert "while-down" in received, output[-3000:]
    assert received.count("while-down") == 1 and received[-1] == "while-down", received
    assert "matches no subscription" not in output, output[-3000:]
    assert "received 1, sent 1, dropped 0" in output, output[-3000:]
