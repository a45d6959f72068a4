"""robot_bridge finds every config and type problem before any socket opens (exit 2, not 3, with the broker down),
names only options it has, and logs under one logger name."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from swarm_bridge.brokers import Mosquitto, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
LOG_LINE = re.compile(r"^\S+ \S+ (?:INFO|WARNING|ERROR) ([\w.]+): (.*)$")


def _config(tmp_path: Path, port: int, **overrides: Any) -> tuple[Path, dict[str, Any]]:
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["uplink"].update(port=port, connect_timeout_s=2)
    data["spool"] = {"path": str(tmp_path / "spool.db"), "max_mb": 16}
    data.update(overrides)
    return tmp_path / "robot_bridge.yaml", data


def _run(path: Path, data: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path.write_text(yaml.safe_dump(data))
    return subprocess.run([*NODE, "--config", str(path)], env=env, capture_output=True, text=True, timeout=120)


def _own_options(env: dict[str, str]) -> set[str]:
    """The options robot_bridge itself offers, from its --help."""
    result = subprocess.run([*NODE, "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"--[a-z][a-z-]+", result.stdout))


def test_mistyped_type_with_the_broker_down_exits_2_naming_file_route_and_type(
        tmp_path: Path, ros_env: dict[str, str]) -> None:
    path, data = _config(tmp_path, free_port())  # nothing listens there: connecting would fail (exit 3)
    index = next(i for i, r in enumerate(data["routes"]) if r.get("type") == "nav_msgs/msg/Odometry")
    data["routes"][index]["type"] = "nav_msgs/msg/Odometri"
    topic = data["routes"][index]["topic"]
    result = _run(path, data, ros_env)
    assert result.returncode == 2, result.stderr
    assert (f"{path}: routes[{index}].type: route {topic}: ROS type 'nav_msgs/msg/Odometri' has no definition "
            "(did you mean 'nav_msgs/msg/Odometry'?)") in result.stderr
    assert "mqtt://" not in result.stderr  # refused before any connection was tried
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", result.stderr))
    assert named <= _own_options(ros_env), f"the fix names options robot_bridge does not have: {named}"


def test_every_bad_route_type_is_named_at_once(tmp_path: Path, ros_env: dict[str, str]) -> None:
    path, data = _config(tmp_path, free_port())
    typed = [i for i, r in enumerate(data["routes"]) if r.get("type")]
    data["routes"][typed[0]]["type"] = "no_such_pkg/msg/Thing"
    data["routes"][typed[-1]]["type"] = "std_msgs/msg/Strin"
    result = _run(path, data, ros_env)
    assert result.returncode == 2, result.stderr
    assert f"{path}: routes[{typed[0]}].type: route " in result.stderr and "no_such_pkg/msg/Thing" in result.stderr
    assert f"{path}: routes[{typed[-1]}].type: route " in result.stderr
    assert "(did you mean 'std_msgs/msg/String'?)" in result.stderr


def test_unusable_trusted_key_with_the_broker_down_exits_2(tmp_path: Path, ros_env: dict[str, str]) -> None:
    key = tmp_path / "coordinator-2026a.pub.pem"
    key.write_text("not a PEM key\n")
    path, data = _config(tmp_path, free_port(), commands={"trusted_keys": [str(key)]})
    result = _run(path, data, ros_env)
    assert result.returncode == 2, result.stderr
    assert f"{path}: commands.trusted_keys: {key}" in result.stderr
    assert "mqtt://" not in result.stderr


def test_robot_bridge_logs_under_one_logger_name(tmp_path: Path, mosquitto: Mosquitto,
                                                 ros_env: dict[str, str]) -> None:
    path, data = _config(tmp_path, mosquitto.port)
    path.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([*NODE, "--config", str(path)], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "routes up" in line:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    lines += rest.splitlines(keepends=True)
    assert proc.returncode == 0, "".join(lines)  # also when SIGTERM comes right after the start
    logged = [m.groups() for m in map(LOG_LINE.match, lines) if m]
    started = {name for name, text in logged if "routes up" in text}
    summaries = {name for name, text in logged if re.search(r": received \d+, sent \d+", text)}
    assert started and summaries, "".join(lines)
    assert started == summaries == {"swarm_bridge.ros.robot_bridge"}



class _WaitSetRefused:
    """An executor as rclpy's single-threaded one behaves once its context was shut down under it."""

    def add_node(self, node: object) -> None:
        pass

    def create_future(self) -> object:
        return object()

    def spin_until_future_complete(self, future: object, timeout_sec: float) -> None:
        raise RuntimeError("failed to initialize wait set: the given context is not valid, either rcl_init() was "
                           "not called or rcl_shutdown() was called.")


def test_spinning_a_context_a_signal_already_shut_down_ends_quietly(ros_domain_id: int) -> None:
    """A SIGTERM between rclpy.init and the bridge's own handler reaches rclpy's, which shuts the context down:
    spinning then ends as after any stop (the node exits 0) instead of raising "context is not valid" (exit 1);
    while the context is alive the same error still surfaces."""
    import rclpy

    from swarm_bridge.ros.spin import spin_until

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_domain_id)
    node = rclpy.create_node("shut_down_early", context=context)
    with pytest.raises(RuntimeError, match="wait set"):
        spin_until(_WaitSetRefused(), [node], timeout_s=5)  # type: ignore[arg-type]
    context.try_shutdown()  # what rclpy's signal handler does
    assert spin_until(_WaitSetRefused(), [node], timeout_s=5) is False  # type: ignore[arg-type]


def test_a_task_action_that_does_not_fit_its_installed_type_exits_2_naming_each_key(
        tmp_path: Path, ros_env: dict[str, str]) -> None:
    navigate = {"action": "/{robot_id}/navigate_to_pose", "type": "nav2_msgs/action/NavigateToPose",
                "goal": {"pose.pose.postion.x": "target.x", "pose.header.frame_id": "target.frame"},
                "progress": {"remaining": "distance_left"}, "result_reason": ["error_text"]}
    dock = {"action": "/{robot_id}/dock", "type": "opennav_docking_msgs/action/DockRobot"}
    path, data = _config(tmp_path, free_port(), tasks={"actions": {"navigate": navigate, "dock": dock}})
    result = _run(path, data, ros_env)
    assert result.returncode == 2, result.stderr
    assert (f"{path}: tasks.actions.navigate.goal.pose.pose.postion.x: nav2_msgs/action/NavigateToPose has no goal "
            "field pose.pose.postion.x; did you mean pose.pose.orientation.x, pose.pose.position.x?") in result.stderr
    assert (f"{path}: tasks.actions.dock.type: ROS type 'opennav_docking_msgs/action/DockRobot': package "
            "'opennav_docking_msgs' has no actions installed") in result.stderr
    assert "Fix: check the spelling (package/action/Name, e.g. nav2_msgs/action/NavigateToPose) or install" in \
        result.stderr
    assert (f"{path}: tasks.actions.navigate.progress.remaining: nav2_msgs/action/NavigateToPose feedback has no "
            "field distance_left; its fields: current_pose, navigation_time") in result.stderr
    assert (f"{path}: tasks.actions.navigate.result_reason: nav2_msgs/action/NavigateToPose result has no field "
            "error_text; its fields: error_code, error_msg") in result.stderr
    assert "mqtt://" not in result.stderr


def test_a_schema_version_the_registry_forbids_stops_the_start_before_any_record_leaves(
        tmp_path: Path, mosquitto: Mosquitto, ros_env: dict[str, str]) -> None:
    """The fleet's registry holds a RobotState whose battery_percent is a string; this robot's (a float) may not
    follow it under BACKWARD: exit 2 naming subject, rule and field, and the broker never sees the robot."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from swarm_bridge.codec.avro import avro_schema
    from swarm_bridge.codec.registry import FileRegistry, Schema

    schema = avro_schema("swarm_bridge_msgs/msg/RobotState")
    body = schema["fields"][-1]["type"]
    field = next(f for f in body["fields"] if f["name"] == "battery_percent")
    field.update(type="string", default="")
    registry = FileRegistry(tmp_path / "registry")
    registry.register("fleet.state.robot_state-value", Schema.avro(schema))
    seen: list[str] = []
    watcher = paho.Client(CallbackAPIVersion.VERSION2, client_id="watch-forbidden", protocol=paho.MQTTv5)
    watcher.on_message = lambda _c, _u, message: seen.append(message.topic)
    watcher.connect("127.0.0.1", mosquitto.port)
    robot_id = f"amr_forbidden_{free_port()}"  # its own id: no retained presence of another test's robot
    watcher.subscribe(f"swarm/+/{robot_id}/#", qos=1)
    watcher.loop_start()
    try:
        path, data = _config(tmp_path, mosquitto.port, registry=str(tmp_path / "registry"), robot_id=robot_id)
        result = _run(path, data, ros_env)
    finally:
        watcher.loop_stop()
        watcher.disconnect()
    assert result.returncode == 2, result.stderr
    assert (f"robot_bridge: {path}: subject fleet.state.robot_state-value: incompatible under BACKWARD: field "
            "'") in result.stderr
    assert "battery_percent" in result.stderr, result.stderr
    assert "mqtt://" not in result.stderr and seen == []  # refused before connecting: no presence, no record
