"""A down route holds a command while its ROS topic has no subscriber (the shipped volatile `reliable` QoS would
lose it), publishes it once one matches, and gives it up, counted with its reason, after commands.hold_s.
Real Mosquitto, the real robot_bridge process, real rclpy."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.codec import Envelope, encode_json
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.transport import MqttLink

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"


class _Bridge:
    """The robot_bridge process; its output read as it comes, so a test can wait for a log line."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([*NODE, "--config", str(config)], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.append(line)

    def output(self) -> str:
        return "".join(self._lines)

    def wait_for(self, text: str, timeout_s: float = 60) -> bool:
        deadline = time.monotonic() + timeout_s
        while text not in self.output():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                return text in self.output()
            time.sleep(0.05)
        return True

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        output = self.output()
        assert self.proc.returncode == 0, output[-3000:]
        return output


def _config(tmp_path: Path, port: int, fleet: str, robot: str, **commands: Any) -> Path:
    """The shipped config with only its task_command down route (its shipped QoS, `reliable`), in JSON."""
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["fleet"], data["robot_id"] = fleet, robot
    data["uplink"]["port"] = port
    data["spool"] = {"path": str(tmp_path / "spool.db"), "max_mb": 16}
    data["commands"].update(commands)
    (down,) = [r for r in data["routes"] if r.get("direction") == "down"]
    assert down["qos"] == "reliable"
    data["routes"] = [{**down, "format": "json"}]
    path = tmp_path / "robot_bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _send_to_the_bridge(coordinator: MqttLink, topic: str, robot: str, command_id: str) -> None:
    """Send the command until the broker had a subscriber for it (the bridge subscribes once started): exactly
    one copy reaches the bridge, the ones before went to no one."""
    for seq in range(600):
        unsubscribed = coordinator.unsubscribed
        body = {"task_id": f"task-{seq}", "command_id": command_id, "robot_id": robot, "kind": "pick"}
        coordinator.send(topic, b"", encode_json(Envelope(robot, "task_command", seq, time.time_ns(), TASK_COMMAND,
                                                          body)), qos=1)
        assert coordinator.flush(10) == 0
        if coordinator.unsubscribed == unsubscribed:
            return
        time.sleep(0.1)
    raise AssertionError(f"the robot bridge never subscribed {topic}")


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


def test_a_command_waits_for_the_robots_subscriber_and_reaches_it(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str]) -> None:
    from swarm_bridge_msgs.msg import TaskCommand

    fleet, robot = f"hold_{uuid.uuid4().hex[:8]}", "amr_051"
    topic = f"swarm/{fleet}/{robot}/command/task_command"
    bridge = _Bridge(_config(tmp_path, mosquitto.port, fleet, robot, hold_s=300), ros_env)  # ample on a busy machine
    coordinator = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id=f"coordinator-{fleet}")
    coordinator.connect()
    node = rclpy.create_node("late_command_sink", context=ros_context)
    received: list[str] = []
    try:
        _send_to_the_bridge(coordinator, topic, robot, "before-the-robot")
        assert bridge.wait_for("holding commands up to 300 s"), bridge.output()[-3000:]
        # the robot's subscriber comes only now
        node.create_subscription(TaskCommand, f"/{robot}/task_command", lambda m: received.append(m.command_id),
                                 qos_preset("reliable"))
        spin_until(make_executor(ros_context), [node], done=lambda: bool(received), timeout_s=120)
    finally:
        coordinator.close()
        node.destroy_node()
        output = bridge.stop()
    assert received == ["before-the-robot"], output[-3000:]
    route = f"route mqtt:{topic} -> ros:/{robot}/task_command"
    assert f"{route}: a ROS subscriber matched after" in output, output[-3000:]
    assert f"{route}: received 1, sent 1, dropped 0" in output, output[-3000:]
    assert f"{route}: 1 commands waited for a ROS subscriber" in output, output[-3000:]


def test_a_command_no_subscriber_takes_within_hold_s_is_dropped_and_counted(
        tmp_path: Path, mosquitto: Mosquitto, ros_env: dict[str, str]) -> None:
    fleet, robot = f"hold_{uuid.uuid4().hex[:8]}", "amr_052"
    topic = f"swarm/{fleet}/{robot}/command/task_command"
    metrics_port = free_port()
    config = _config(tmp_path, mosquitto.port, fleet, robot, hold_s=1)
    data = yaml.safe_load(config.read_text())
    data["metrics_port"] = metrics_port
    config.write_text(yaml.safe_dump(data))
    bridge = _Bridge(config, ros_env)
    coordinator = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id=f"coordinator-{fleet}")
    coordinator.connect()
    route = f"route mqtt:{topic} -> ros:/{robot}/task_command"
    try:
        _send_to_the_bridge(coordinator, topic, robot, "to-no-one")
        assert bridge.wait_for(f"{route}: dropped 1 command(s) (no ROS subscriber within 1 s): to-no-one"), \
            bridge.output()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        coordinator.close()
        output = bridge.stop()
    assert _sample(metrics, f'swarm_bridge_route_records_total{{event="held",route="{route}"}}') == 1
    assert _sample(metrics, f'swarm_bridge_route_records_total{{event="published",route="{route}"}}') == 0
    assert _sample(metrics, f'swarm_bridge_route_dropped_total{{reason="no ROS subscriber within 1 s",'
                            f'route="{route}"}}') == 1
    assert f"{route}: received 1, sent 0, dropped 1" in output, output[-3000:]
    assert f"{route}: dropped by reason: no ROS subscriber within 1 s: 1" in output, output[-3000:]
