"""Every launch file started with the real `ros2 launch` against the real brokers, checked by what it does.

`ros2 launch` comes from install-ros2-launch (fixture `ros2_launch`); swarm_bridge is installed as a user does it
(`pip install --prefix`, found through AMENT_PREFIX_PATH) with no `swarm-bridge` on PATH. The colcon flow of the
same launch files is in test_packaging.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from confluent_kafka.admin import AdminClient
from coordinator_fleet import CAPABILITIES, TaskLog, coordinator_doc, write_config
from launch_harness import (
    LaunchRun,
    demo_delivers,
    ended_cleanly,
    gateway_forwards,
    launch_path,
    pip_prefix_env,
    source_copy,
)

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.codec import Envelope
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.wire import wire_decoder, wire_encoder
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor
from swarm_bridge.routing.naming import robot_namespace
from swarm_bridge.sim.kafka_fleet import KafkaFleet
from swarm_bridge.sim.taps import MqttTap
from swarm_bridge.sim.task_robots import TaskRobot
from swarm_bridge.transport import MqttLink

# the first test also waits for the session fixtures: install-ros2-launch (up to minutes on a busy machine) and pip
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def pip_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """swarm_bridge installed as `pip install --prefix PREFIX .` installs it (node shims, launch files, index)."""
    prefix = tmp_path_factory.mktemp("pip-prefix")
    source = source_copy(tmp_path_factory.mktemp("pip-source") / "swarm_bridge")
    # --ignore-installed: without it pip uninstalls the venv's editable swarm_bridge first
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--ignore-installed", "--disable-pip-version-check", "--prefix", str(prefix), str(source)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"pip install --prefix failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return prefix


@pytest.fixture()
def launch_env(ros2_launch: Path, pip_prefix: Path, ros_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return pip_prefix_env(ros_env, pip_prefix, launch_path(tmp_path, ros2_launch), tmp_path / "ros-log")


def _launch(file: str, env: dict[str, str], cwd: Path, **arguments: object) -> LaunchRun:
    return LaunchRun(["ros2", "launch", "swarm_bridge", file, *(f"{k}:={v}" for k, v in arguments.items())],
                     env=env, cwd=cwd)


def _command(robot_id: str, seq: int, fmt: str) -> bytes:
    """A TaskCommand for `robot_id` as the coordinator sends it, in the down route's format."""
    ros_type = "swarm_bridge_msgs/msg/TaskCommand"
    body = default_types().default_message(ros_type)
    body.update(task_id=f"task-{seq}", command_id=f"launch-{uuid.uuid4().hex[:8]}", robot_id=robot_id, kind="pick")
    envelope = Envelope(robot_id=robot_id, stream="task_command", seq=seq, stamp_ns=time.time_ns(),
                        ros_type=ros_type, body=body)
    return wire_encoder(ros_type, fmt, "mqtt", subject="-").encode(envelope)  # type: ignore[arg-type]


@pytest.mark.parametrize("robot_id", ["amr-7", "007", "amr_042"])
def test_robot_bridge_launch_bridges_any_robot_id_in_its_namespace(
        robot_id: str, tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, launch_env: dict[str, str]) -> None:
    """The shipped config through launch with `robot_id:=`: the robot's status goes up from /<ns>/task_status under
    its own id, and a command for it comes down on /<ns>/task_command (never amr_007's topics)."""
    from swarm_bridge_msgs.msg import TaskCommand, TaskStatus

    data = yaml.safe_load((REPO / "config/robot_bridge.yaml").read_text())
    data["uplink"]["port"] = mosquitto.port
    data["spool"] = {"path": str(tmp_path / "spool.db"), "max_mb": 16}
    config = tmp_path / "robot_bridge.yaml"
    config.write_text(yaml.safe_dump(data))
    formats = {route["stream"]: route["format"] for route in data["routes"]}
    ns, base = robot_namespace(robot_id), f"swarm/warehouse_a/{robot_id}"
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[f"{base}/event/task_status"])
    link = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id=f"launch-coordinator-{ns}")
    link.connect()
    run = _launch("robot_bridge.launch.py", launch_env, tmp_path, robot_id=robot_id, config=config)
    node = rclpy.create_node("launch_probe", context=ros_context)
    received: list[Any] = []
    try:
        status = node.create_publisher(TaskStatus, f"/{ns}/task_status", qos_preset("reliable"))
        node.create_subscription(TaskCommand, f"/{ns}/task_command", received.append, qos_preset("reliable"))
        executor = make_executor(ros_context)
        executor.add_node(node)

        def spun(check: Callable[[], bool]) -> Callable[[], bool]:
            def step() -> bool:
                executor.spin_once(timeout_sec=0.05)
                return check()
            return step

        run.wait_until(spun(lambda: status.get_subscription_count() > 0), 120, f"a subscriber on /{ns}/task_status")
        status.publish(TaskStatus(task_id="t1", robot_id=robot_id, state=TaskStatus.STATE_RUNNING))
        run.wait_until(lambda: len(tap.snapshot()) > 0, 60, f"the status on {base}/event/task_status")
        run.wait_until(spun(lambda: node.count_publishers(f"/{ns}/task_command") > 0), 60,
                       f"a publisher on /{ns}/task_command")
        seq = 0

        def command_arrived() -> bool:  # the bridge subscribes on MQTT right after it creates its ROS publisher
            nonlocal seq
            link.send(f"{base}/command/task_command", b"", _command(robot_id, seq, formats["task_command"]), qos=1)
            seq += 1
            deadline = time.monotonic() + 1
            while not received and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
            return bool(received)

        run.wait_until(command_arrived, 60, f"a command on /{ns}/task_command")
    finally:
        node.destroy_node()
        output = run.stop()
        link.close()
        tap.close()
    (record,) = tap.snapshot()[:1]
    envelope = wire_decoder("swarm_bridge_msgs/msg/TaskStatus", formats["task_status"], "mqtt",
                            subject="-").decode(record.payload)
    assert (envelope.robot_id, envelope.body["task_id"]) == (robot_id, "t1")
    assert received[0].robot_id == robot_id
    assert f"route ros:/{ns}/task_status -> mqtt:{base}/event/task_status" in output
    ended_cleanly(output)


def test_robot_bridge_launch_leaves_a_bad_robot_id_to_the_bridge_s_own_error(tmp_path: Path,
                                                                          launch_env: dict[str, str]) -> None:
    """An id the bridge refuses reaches the bridge (launch does not choke on it as a ROS name first), which names
    the key and exits 2."""
    run = _launch("robot_bridge.launch.py", launch_env, tmp_path, robot_id="amr 7")
    output = run.wait(300)
    assert "(--robot-id): robot_id: must be letters, digits" in output and "(got 'amr 7')" in output, output
    assert "process has died" in output and "exit code 2" in output, output
    assert "Traceback" not in output, output


def test_edge_gateway_launch_carries_mqtt_to_kafka(tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka,
                                                   launch_env: dict[str, str]) -> None:
    """The shipped gateway config through launch: a robot's presence on MQTT reaches Kafka."""
    gateway_forwards(tmp_path, mosquitto, kafka, lambda config: _launch("edge_gateway.launch.py", launch_env,
                                                                        tmp_path, config=config))


def test_edge_gateway_launch_takes_the_gateway_id_from_its_argument(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, launch_env: dict[str, str]) -> None:
    """`gateway_id:=` overrides the config's, so one config starts each gateway of a hub or split group."""
    gateway_id = f"hub_b_{uuid.uuid4().hex[:6]}"
    output = gateway_forwards(tmp_path, mosquitto, kafka, lambda config: _launch(
        "edge_gateway.launch.py", launch_env, tmp_path, config=config, gateway_id=gateway_id))
    assert f"gateway {gateway_id} (fleet" in output, output[-4000:]


def test_fleet_coordinator_launch_assigns_a_task_from_ros(tmp_path: Path, kafka: Kafka, ros_context: Any,
                                                          launch_env: dict[str, str]) -> None:
    """The coordinator through launch: a task request on /tasks/submit is assigned to a robot and done."""
    from std_msgs.msg import String

    doc = coordinator_doc(kafka, tmp_path)
    config = write_config(doc, tmp_path / "coordinator.yaml")
    parsed = validate_config(doc, CoordinatorConfig)
    run = _launch("fleet_coordinator.launch.py", launch_env, tmp_path, config=config, instance_id="launch")
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    try:
        run.wait_until(lambda: parsed.topics.events in admin.list_topics(timeout=10).topics, 120,
                       "the coordinator's topics")
    except AssertionError:
        run.stop()
        raise
    log = TaskLog(kafka, parsed)
    sim = KafkaFleet(parsed, [TaskRobot("drone_1", "drone", CAPABILITIES["drone"])]).start()
    node = rclpy.create_node("task_source", context=ros_context)
    try:
        publisher = node.create_publisher(String, "/tasks/submit", qos_preset("reliable"))
        run.wait_until(lambda: publisher.get_subscription_count() > 0, 120,
                       "the coordinator's /tasks/submit subscription")
        publisher.publish(String(data=json.dumps({"task_id": "launch-7", "kind": "inspect"})))
        run.wait_until(lambda: log.terminal()["launch-7"] >= 1, 120, "task launch-7 to end")
        last = log.last()["launch-7"].task
    finally:
        node.destroy_node()
        output = run.stop()
        sim.stop()
        log.close()
    assert (last.state, last.robot_id) == (TaskState.DONE, "drone_1")
    ended_cleanly(output)


def test_fleet_demo_launch_runs_the_demo(tmp_path: Path, shared_bags: Path, launch_env: dict[str, str]) -> None:
    """The demo through launch on a real bag: every replayed message delivered once, its tasks done."""
    demo_delivers(tmp_path, shared_bags, lambda arguments: _launch("fleet_demo.launch.py", launch_env, tmp_path,
                                                                   **arguments))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_robot_bridge_launch_leaves_no_orphan_bridge(
        signum: int, tmp_path: Path, mosquitto: Mosquitto, launch_env: dict[str, str]) -> None:
    """`ros2 launch` ends on SIGTERM (or SIGKILL) without stopping its processes; the bridge it started stops with
    it all the same, in order: it says `offline, stopped` itself (not its Last Will) and its process is gone."""
    robot_id = f"amr-{uuid.uuid4().hex[:6]}"
    data = yaml.safe_load((REPO / "config/robot_bridge.yaml").read_text())
    data["uplink"]["port"] = mosquitto.port
    data["spool"] = {"path": str(tmp_path / "spool.db"), "max_mb": 16}
    config = tmp_path / "robot_bridge.yaml"
    config.write_text(yaml.safe_dump(data))
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[f"swarm/warehouse_a/{robot_id}/presence/status"])
    run = _launch("robot_bridge.launch.py", launch_env, tmp_path, robot_id=robot_id, config=config)
    bridge_pid = 0
    try:
        def presence() -> list[dict[str, str]]:
            return [json.loads(record.payload) for record in tap.snapshot()]

        run.wait_until(lambda: any(p["state"] == "online" for p in presence()), 120, f"{robot_id} online")
        started = re.search(r"robot_bridge-1\]: process started with pid \[(\d+)\]", run.output)
        assert started, run.output[-4000:]
        bridge_pid = int(started.group(1))
        run.proc.send_signal(signum)  # the launch process only, as `kill PID` does
        run.proc.wait(timeout=60)
        deadline = time.monotonic() + 120
        while _alive(bridge_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(bridge_pid), f"the bridge (pid {bridge_pid}) outlived its launch"
        deadline = time.monotonic() + 30
        while presence()[-1]["state"] != "offline" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert presence()[-1] == {"robot_id": robot_id, "state": "offline", "reason": "stopped"}, presence()
    finally:
        run.stop()
        tap.close()
        if bridge_pid and _alive(bridge_pid):  # an orphan of a failed check must not outlive the test
            os.kill(bridge_pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan is reaped by init, so a zombie means it ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
