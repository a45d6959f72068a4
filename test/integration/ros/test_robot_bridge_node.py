"""The robot_bridge executable as ros2 run starts it: real process, real rclpy, real Mosquitto."""

from __future__ import annotations

import json
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from runs import one_run

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.codec import Envelope, decode_json, encode_json
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.wire import wire_decoder, wire_encoder
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.sim.taps import MqttTap
from swarm_bridge.transport import MqttLink

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]


def _config(tmp_path: Path, port: int, **overrides: Any) -> Path:
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["uplink"]["port"] = port
    data["spool"] = {"path": str(tmp_path / "spool.db"), "max_mb": 16}
    data.update(overrides)
    path = tmp_path / "robot_bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _status_record(payload: bytes) -> Envelope:
    """A TaskStatus record as the shipped config's task_status route sends it (in that route's format)."""
    routes = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())["routes"]
    fmt = next(r["format"] for r in routes if r.get("stream") == "task_status")
    return wire_decoder("swarm_bridge_msgs/msg/TaskStatus", fmt, "mqtt", subject="-").decode(payload)


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
        publisher = node.create_publisher(TaskStatus, "/amr_042/task_status", qos_preset("reliable"))
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
    # a retained presence an earlier bridge of amr_042 left on the session's broker comes first, flagged retained
    presence = [json.loads(r.payload) for r in tap.snapshot() if r.topic.endswith("/presence/status")
                and not r.retained]
    assert [(p["state"], p["reason"]) for p in presence] == [("online", "connected"), ("offline", "stopped")]
    records = [r for r in tap.snapshot() if not r.topic.endswith("/presence/status")]
    assert {r.topic for r in records} == {"swarm/warehouse_a/amr_042/event/task_status"}, output
    assert [_status_record(r.payload).body["task_id"] for r in records] == [f"t{i}" for i in range(10)]
    assert node_proc.returncode == 0, output
    assert "received 10, sent 10, dropped 0" in output
    if platform.libc_ver()[0] == "glibc" and not any(k.startswith("MALLOC_") for k in ros_env):
        assert "allocator: glibc's mmap threshold fixed at 262144 bytes" in output  # before any image flows


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
    assert "ROS type 'nav_msgs/msg/Odometri' has no definition (did you mean 'nav_msgs/msg/Odometry'?)" \
        in result.stderr


def test_unreachable_uplink_exits_3(tmp_path: Path, ros_env: dict[str, str]) -> None:
    config = _config(tmp_path, free_port())  # nothing listens there
    result = subprocess.run([*NODE, "--config", str(config)], env=ros_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 3
    assert "mqtt://127.0.0.1:" in result.stderr and "Fix:" in result.stderr


def _publish_status(ros_context: Any, count: int, *, rate_hz: float = 200.0) -> None:
    """Publish `count` TaskStatus on /amr_042/task_status once the bridge subscribed."""
    from swarm_bridge_msgs.msg import TaskStatus

    node = rclpy.create_node("status_source", context=ros_context)
    publisher = node.create_publisher(TaskStatus, "/amr_042/task_status", qos_preset("reliable"))
    executor = make_executor(ros_context)
    assert spin_until(executor, [node], done=lambda: publisher.get_subscription_count() > 0, timeout_s=30)
    for i in range(count):
        publisher.publish(TaskStatus(task_id=f"t{i}", robot_id="amr_042", state=TaskStatus.STATE_RUNNING))
        time.sleep(1 / rate_hz)
    spin_until(executor, [], timeout_s=0.5)
    node.destroy_node()


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    return output


def test_node_starts_without_its_broker_and_drains_the_spool_when_it_comes(
        tmp_path: Path, ros_context: Any, ros_env: dict[str, str]) -> None:
    """Spooled while the broker is away (the spool and uplink gauges say so), drained in order once it comes. The
    tap's session is made before (persistent, kept by the broker across its restart), so it cannot miss a record
    the bridge drains before the tap is back."""
    port, metrics_port = free_port(), free_port()
    config = _config(tmp_path, port, metrics_port=metrics_port)
    data = yaml.safe_load(config.read_text())
    data["uplink"].update(require_at_start=False, connect_timeout_s=1, reconnect_min_s=2, reconnect_max_s=2)
    config.write_text(yaml.safe_dump(data))
    pattern = ["swarm/warehouse_a/amr_042/event/#"]
    broker = Mosquitto(run_dir=tmp_path / "late-broker", port=port)
    broker.start()
    MqttTap(host="127.0.0.1", port=port, patterns=pattern, client_id="spool-tap", session_expiry_s=600).close()
    broker.stop()
    proc = subprocess.Popen([*NODE, "--config", str(config), "--robot-id", "amr_042"], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tap = None
    try:
        _publish_status(ros_context, 10)  # no broker yet: all spooled
        assert _wait_metric(metrics_port, "swarm_bridge_spool_records", lambda v: v == 10), "10 records spooled"
        text = _metrics(metrics_port)
        assert _sample(text, f'swarm_bridge_uplink_connected{{uplink="mqtt://127.0.0.1:{port}"}}') == 0, text
        assert _sample(text, "swarm_bridge_spool_bytes") > 0, text
        broker.start()
        tap = MqttTap(host="127.0.0.1", port=port, patterns=pattern, client_id="spool-tap", session_expiry_s=600)
        deadline = time.monotonic() + 30
        while len(tap.snapshot()) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _wait_metric(metrics_port, "swarm_bridge_spool_records", lambda v: v == 0), "the spool drained"
        assert _sample(_metrics(metrics_port),
                       f'swarm_bridge_uplink_connected{{uplink="mqtt://127.0.0.1:{port}"}}') == 1
    finally:
        if tap is not None:
            tap.close()
        output = _stop(proc)
        broker.stop()
    assert one_run(_status_record(r.payload).seq for r in tap.snapshot()) == list(range(10)), output
    assert "not reachable" in output or "spooling until it answers" in output


def _metrics(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def _wait_metric(port: int, name: str, ok: Any, timeout_s: float = 30.0) -> bool:
    """Scrape until the sample `name` satisfies `ok` (bounded); False when it never did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if ok(_sample(_metrics(port), name)):
                return True
        except (OSError, AssertionError):
            pass  # not serving yet, or the sample not there yet
        time.sleep(0.2)
    return False


def test_rate_limit_drops_are_counted_in_metrics(tmp_path: Path, mosquitto: Mosquitto, ros_context: Any,
                                                ros_env: dict[str, str]) -> None:
    import urllib.request

    metrics_port = free_port()
    config = _config(tmp_path, mosquitto.port, metrics_port=metrics_port)
    data = yaml.safe_load(config.read_text())
    data["routes"][1]["max_rate_hz"] = 2.0  # task_status
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([*NODE, "--config", str(config), "--robot-id", "amr_042"], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _publish_status(ros_context, 20, rate_hz=100)  # 0.2 s at 100 Hz: one or two pass at 2 Hz
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        output = _stop(proc)
    route = "route ros:/amr_042/task_status -> mqtt:swarm/warehouse_a/amr_042/event/task_status"
    sent = _sample(text, f'swarm_bridge_route_records_total{{event="sent",route="{route}"}}')
    dropped = _sample(text, f'swarm_bridge_route_dropped_total{{reason="rate limit",route="{route}"}}')
    assert 1 <= sent <= 2 and sent + dropped == 20, text
    assert f"received 20, sent {int(sent)}, dropped {int(dropped)}" in output


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def _command(seq: int, command_id: str, *, robot: str = "amr_042", deadline_sec: int = 0,
             ros_type: str = "swarm_bridge_msgs/msg/TaskCommand", fmt: str = "json") -> bytes:
    body = {"task_id": f"task-{seq}", "command_id": command_id, "robot_id": robot, "kind": "pick", "priority": 9,
            "target_pose": {"header": {"frame_id": "map"}, "pose": {"position": {"x": 1.5, "y": -2.0, "z": 0.0}}},
            "parameters": [{"key": "payload_kg", "value": "3.5"}], "deadline": {"sec": deadline_sec, "nanosec": 0}}
    envelope = Envelope(robot_id=robot, stream="task_command", seq=seq, stamp_ns=time.time_ns(), ros_type=ros_type,
                        body=body)
    if fmt == "json" or ros_type != "swarm_bridge_msgs/msg/TaskCommand":
        return encode_json(envelope)  # a foreign record: JSON, whatever the route carries
    full = _merged(default_types().default_message(ros_type), body)  # binary records carry every field
    envelope = Envelope(envelope.robot_id, envelope.stream, seq, envelope.stamp_ns, ros_type, full)
    return wire_encoder(ros_type, fmt, "mqtt", subject="-").encode(envelope)  # type: ignore[arg-type]


def _merged(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    return {k: _merged(v, given[k]) if isinstance(v, dict) and k in given else given.get(k, v)
            for k, v in defaults.items()}


@pytest.mark.parametrize("fmt", ["json", "avro", "protobuf"])
def test_commands_come_down_checked_and_refusals_are_counted(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str], fmt: str) -> None:
    from swarm_bridge_msgs.msg import TaskCommand

    config = _config(tmp_path, mosquitto.port)
    data = yaml.safe_load(config.read_text())
    data["routes"][-1]["format"] = fmt  # the task_command down route
    config.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([*NODE, "--config", str(config), "--robot-id", "amr_042"], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("command_sink", context=ros_context)
    received: list[TaskCommand] = []
    node.create_subscription(TaskCommand, "/amr_042/task_command", received.append, qos_preset("reliable"))
    executor = make_executor(ros_context)
    link = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="coordinator-test")
    link.connect()
    topic = "swarm/warehouse_a/amr_042/command/task_command"
    try:
        assert spin_until(executor, [node], done=lambda: node.count_publishers("/amr_042/task_command") > 0,
                          timeout_s=30)
        time.sleep(0.5)  # the bridge subscribes right after creating its publisher
        future = int(time.time()) + 3600
        payloads = [
            _command(0, "c-0", deadline_sec=future, fmt=fmt),
            _command(1, "c-0", deadline_sec=future, fmt=fmt),  # same command id again: duplicate
            _command(2, "c-2", robot="amr_099", fmt=fmt),  # addressed to another robot
            _command(3, "c-3", deadline_sec=1_000, fmt=fmt),  # deadline long past
            b"\xc3\x01\xffnot a record" if fmt == "avro" else b"\x00\xffnot a record",  # garbage
            _command(5, "c-5", ros_type="std_msgs/msg/String"),  # not what this route carries
            _command(6, "c-6", fmt=fmt),  # still alive: accepted
        ]
        for payload in payloads:
            link.send(topic, b"", payload, qos=1)
        assert link.flush(10) == 0
        assert spin_until(executor, [], done=lambda: len(received) >= 2, timeout_s=15)
        spin_until(executor, [], timeout_s=1.0)  # nothing else may arrive
    finally:
        link.close()
        node.destroy_node()
        output = _stop(proc)
    assert [(c.task_id, c.command_id) for c in received] == [("task-0", "c-0"), ("task-6", "c-6")]
    first = received[0]
    assert first.kind == "pick" and first.priority == 9 and first.target_pose.pose.position.x == 1.5
    assert first.parameters[0].key == "payload_kg" and first.target_pose.header.frame_id == "map"
    route = "route mqtt:swarm/warehouse_a/amr_042/command/task_command -> ros:/amr_042/task_command"
    assert f"{route}: received 7, sent 2, dropped 5" in output
    # The foreign record is JSON: of the wrong ROS type on a json route, a format mismatch (named once) on the others.
    # The garbage: malformed, but Avro single-object with an unknown fingerprint: of another schema.
    expected = {"duplicate command id": 1, "addressed to another robot": 1, "deadline passed": 1}
    expected |= {"json": {"malformed": 1, "wrong ROS type": 1}, "avro": {"wrong ROS type": 1},
                 "protobuf": {"malformed": 1}}[fmt]
    for reason, count in expected.items():
        assert output.count(f"refused 1 ({reason}") == count, (reason, output[-3000:])
    assert output.count(f"{route}: format mismatch at the first such record") == (fmt != "json"), output[-3000:]


def test_match_routes_discover_topics_and_their_types(tmp_path: Path, mosquitto: Mosquitto, ros_context: Any,
                                                      ros_env: dict[str, str]) -> None:
    from sensor_msgs.msg import Image, Temperature
    from std_msgs.msg import String

    config = _config(tmp_path, mosquitto.port)
    data = yaml.safe_load(config.read_text())
    data["routes"] = [{"match": {"allow": ["/amr_042/sensors/.*"], "deny": [".*/camera/.*"]}, "channel": "telemetry",
                       "stream": "s", "qos": "reliable", "format": "avro"}]
    config.write_text(yaml.safe_dump(data))
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=["swarm/warehouse_a/amr_042/telemetry/#"])
    proc = subprocess.Popen([*NODE, "--config", str(config), "--robot-id", "amr_042"], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("sensor_source", context=ros_context)
    sources = {
        "/amr_042/sensors/temp": (Temperature, lambda i: Temperature(temperature=20.0 + i)),
        "/amr_042/sensors/status": (String, lambda i: String(data=f"ok {i}")),
        "/amr_042/sensors/camera/image": (Image, lambda i: Image(width=i)),  # denied
        "/amr_042/fix": (String, lambda i: String(data=f"fix {i}")),  # allowed by no pattern
    }
    publishers = {topic: node.create_publisher(cls, topic, qos_preset("reliable"))
                  for topic, (cls, _) in sources.items()}
    executor = make_executor(ros_context)
    try:
        wanted = ["/amr_042/sensors/temp", "/amr_042/sensors/status"]
        assert spin_until(executor, [node], timeout_s=30,
                          done=lambda: all(publishers[t].get_subscription_count() > 0 for t in wanted))
        for i in range(5):
            for topic, (_, make) in sources.items():
                publishers[topic].publish(make(i))
        deadline = time.monotonic() + 15
        while len(tap.snapshot()) < 10 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        node.destroy_node()
    finally:
        output = _stop(proc)
        tap.close()
    by_topic: dict[str, list[bytes]] = {}
    for record in tap.snapshot():
        by_topic.setdefault(record.topic, []).append(record.payload)
    assert sorted(by_topic) == ["swarm/warehouse_a/amr_042/telemetry/s_sensors_status",
                                "swarm/warehouse_a/amr_042/telemetry/s_sensors_temp"], output[-2000:]
    temp = wire_decoder("sensor_msgs/msg/Temperature", "avro", "mqtt", subject="t")
    bodies = [temp.decode(p) for p in by_topic["swarm/warehouse_a/amr_042/telemetry/s_sensors_temp"]]
    assert [b.body["temperature"] for b in bodies] == [20.0, 21.0, 22.0, 23.0, 24.0]
    assert {b.ros_type for b in bodies} == {"sensor_msgs/msg/Temperature"}
    discovered = [line for line in output.splitlines() if "discovered" in line]
    assert len(discovered) == 2 and not any("camera" in line for line in discovered)
    for topic, ros_type in (("/amr_042/fix", "std_msgs/msg/String"),
                            ("/amr_042/sensors/camera/image", "sensor_msgs/msg/Image")):  # named once, not bridged
        assert output.count(f"topic {topic} ({ros_type}) is in the robot's namespace but no route takes it") == 1


def test_transient_local_retain_and_qos0_routes(tmp_path: Path, mosquitto: Mosquitto, ros_context: Any,
                                                ros_env: dict[str, str]) -> None:
    from nav_msgs.msg import Odometry
    from swarm_bridge_msgs.msg import RobotState

    config = _config(tmp_path, mosquitto.port)
    data = yaml.safe_load(config.read_text())
    data["routes"] = [
        {"topic": "/amr_042/robot_state", "type": "swarm_bridge_msgs/msg/RobotState", "channel": "state",
         "stream": "robot_state", "qos": "transient_local", "format": "json", "retain": True},
        {"topic": "/amr_042/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry", "stream": "odometry",
         "qos": "sensor_data", "format": "json", "mqtt_qos": 0},
    ]
    config.write_text(yaml.safe_dump(data))
    node = rclpy.create_node("late_state_source", context=ros_context)
    state_pub = node.create_publisher(RobotState, "/amr_042/robot_state", qos_preset("transient_local"))
    state_pub.publish(RobotState(robot_id="amr_042", battery_percent=77.0))  # before the bridge exists
    odom_pub = node.create_publisher(Odometry, "/amr_042/odom", qos_preset("sensor_data"))
    proc = subprocess.Popen([*NODE, "--config", str(config), "--robot-id", "amr_042"], env=ros_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    executor = make_executor(ros_context)
    topic = "swarm/warehouse_a/amr_042/state/robot_state"
    try:
        assert spin_until(executor, [node], done=lambda: odom_pub.get_subscription_count() > 0, timeout_s=30)
        for _ in range(50):
            odom_pub.publish(Odometry())
            spin_until(executor, [], timeout_s=0.01)
        spin_until(executor, [], timeout_s=1.0)
        late = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[topic])  # subscribes after the fact
        deadline = time.monotonic() + 10
        while not late.snapshot() and time.monotonic() < deadline:
            time.sleep(0.05)
        late.close()
    finally:
        node.destroy_node()
        output = _stop(proc)
    (state,) = late.snapshot()
    assert state.retained and decode_json(state.payload).body["battery_percent"] == 77.0, output[-2000:]
    odometry = "route ros:/amr_042/odom -> mqtt:swarm/warehouse_a/amr_042/telemetry/odometry"
    received = int(output.split(f"{odometry}: received ")[1].split(",")[0])
    assert 1 <= received <= 50 and f"{odometry}: received {received}, sent {received}, dropped 0" in output
