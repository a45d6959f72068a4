"""The robot_bridge executable as ros2 run starts it: real process, real rclpy, real Mosquitto."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.codec import decode_json
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.transport import MqttTap

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]


def _config(tmp_path: Path, port: int, **overrides: Any) -> Path:
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["uplink"]["port"] = port
    data.update(overrides)
    path = tmp_path / "robot_bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_node_bridges_until_sigterm(tmp_path: Path, mosquitto: Mosquitto, ros_context: Any,
                                    ros_env: dict[str, str]) -> None:
    from swarm_bridge_msgs.msg import TaskStatus

    config = _config(tmp_path, mosquitto.port)
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=["swarm/warehouse_a/amr_042/#"])
    node_proc = subprocess.Popen([*NODE, "--config", str(config), "--robot-id", "amr_042",
                                  "--ros-args", "-r", "__node:=robot_bridge_amr_042"],
                                 env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        node = rclpy.create_node("status_source", context=ros_context)
        publisher = node.create_publisher(TaskStatus, "/amr_007/task_status", qos_preset("reliable"))
        executor = make_executor(ros_context)
        assert spin_until(executor, [node], done=lambda: publisher.get_subscription_count() > 0, timeout_s=30)
        for i in range(10):
            publisher.publish(TaskStatus(task_id=f"t{i}", robot_id="amr_042", state=TaskStatus.STATE_RUNNING))
        deadline = time.monotonic() + 15
        while len(tap.snapshot()) < 10 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        node.destroy_node()
    finally:
        node_proc.send_signal(signal.SIGTERM)
        output, _ = node_proc.communicate(timeout=30)
        tap.close()
    records = tap.snapshot()
    assert {r.topic for r in records} == {"swarm/warehouse_a/amr_042/event/task_status"}, output
    assert [decode_json(r.payload).body["task_id"] for r in records] == [f"t{i}" for i in range(10)]
    assert node_proc.returncode == 0, output
    assert "received 10, sent 10, dropped 0" in output


def test_bad_config_exits_2_naming_file_and_key(tmp_path: Path, ros_env: dict[str, str]) -> None:
    config = _config(tmp_path, 1883, uplnk={"kind": "mqtt"})
    result = subprocess.run([*NODE, "--config", str(config)], env=ros_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert f"{config}: unknown key 'uplnk' (did you mean 'uplink'?)" in result.stderr


def test_unknown_ros_type_exits_2(tmp_path: Path, mosquitto: Mosquitto, ros_env: dict[str, str]) -> None:
    config = _config(tmp_path, mosquitto.port)
    data = yaml.safe_load(config.read_text())
    data["routes"][0]["type"] = "nav_msgs/msg/Odometri"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run([*NODE, "--config", str(config)], env=ros_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "ROS type 'nav_msgs/msg/Odometri': package 'nav_msgs' has no message 'Odometri'" in result.stderr


def test_unreachable_uplink_exits_3(tmp_path: Path, ros_env: dict[str, str]) -> None:
    config = _config(tmp_path, free_port())  # nothing listens there
    result = subprocess.run([*NODE, "--config", str(config)], env=ros_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 3
    assert "mqtt://127.0.0.1:" in result.stderr and "Fix:" in result.stderr
