"""Signed commands end to end: real Mosquitto, the robot_bridge process, real rclpy. Only good ones reach ROS."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.codec import Envelope
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.signing import open_signed, wrap_signed
from swarm_bridge.codec.wire import wire_encoder
from swarm_bridge.commands import CommandSigner, generate_key_pair
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.transport import MqttLink

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
TASK = "swarm_bridge_msgs/msg/TaskCommand"
ROUTE = "route mqtt:swarm/warehouse_a/amr_042/command/task_command -> ros:/amr_042/task_command"


def _record(command_id: str, fmt: str, *, robot: str = "amr_042", issued_ns: int | None = None) -> bytes:
    """A TaskCommand record as the coordinator frames it for MQTT (unsigned)."""
    issued_ns = time.time_ns() if issued_ns is None else issued_ns
    body = default_types().default_message(TASK)
    body.update(task_id=f"task-{command_id}", command_id=command_id, robot_id=robot, kind="pick", priority=9,
                issued_at={"sec": issued_ns // 10**9, "nanosec": issued_ns % 10**9})
    envelope = Envelope(robot_id=robot, stream="task_command", seq=int(command_id.split("-")[1]),
                        stamp_ns=time.time_ns(), ros_type=TASK, body=body)
    return wire_encoder(TASK, fmt, "mqtt", subject="-").encode(envelope)  # type: ignore[arg-type]


def _readdressed(signed: bytes) -> bytes:
    """A command signed for amr_099, its robot id rewritten to amr_042 (same length), signature kept."""
    key_id, signature, inner = open_signed(signed)
    return wrap_signed(key_id, signature, inner.replace(b"amr_099", b"amr_042"))


def _tampered(signed: bytes) -> bytes:
    return signed.replace(b"pick", b"drop")


def _metric(text: str, reason: str) -> float:
    name = f'swarm_bridge_route_dropped_total{{reason="{reason}",route="{ROUTE}"}}'
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_only_authentic_fresh_commands_reach_ros(tmp_path: Path, mosquitto: Mosquitto, ros_context: Any,
                                                 ros_env: dict[str, str], fmt: str) -> None:
    from swarm_bridge_msgs.msg import TaskCommand

    private, _ = generate_key_pair("coord-2026a", tmp_path / "trusted")  # the robot trusts coord-2026a.pub.pem
    secret = private.read_bytes()
    private.rename(tmp_path / private.name)  # the private key lives on the coordinator, not in the robot's dir
    signer = CommandSigner.from_file(tmp_path / private.name)
    impostor = CommandSigner(Ed25519PrivateKey.generate(), "coord-2026a")  # right id, wrong key
    stranger = CommandSigner(Ed25519PrivateKey.generate(), "coord-other")  # a key the robot never heard of
    metrics_port = free_port()
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["uplink"]["port"] = mosquitto.port
    data["spool"] = {"path": str(tmp_path / "spool.db"), "max_mb": 16}
    data["metrics_port"] = metrics_port
    data["routes"][-1]["format"] = fmt
    data["commands"] = {"trusted_keys": str(tmp_path / "trusted"), "require_signed": True, "max_age_s": 60,
                        "max_clock_skew_s": 5}
    config = tmp_path / "robot_bridge.yaml"
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
    hour = 3600 * 10**9
    try:
        assert spin_until(executor, [node], done=lambda: node.count_publishers("/amr_042/task_command") > 0,
                          timeout_s=30)
        time.sleep(0.5)  # the bridge subscribes right after creating its publisher
        good = signer.sign(_record("c-0", fmt))
        payloads = [
            good,
            good,  # replayed: duplicate command id
            _tampered(signer.sign(_record("c-2", fmt))),  # bad signature
            _record("c-3", fmt),  # unsigned while signatures are required
            impostor.sign(_record("c-4", fmt)),  # bad signature (wrong key)
            stranger.sign(_record("c-5", fmt)),  # unknown signing key
            signer.sign(_record("c-6", fmt, robot="amr_099")),  # authentic, for another robot
            _readdressed(signer.sign(_record("c-7", fmt, robot="amr_099"))),  # re-addressed: bad signature
            signer.sign(_record("c-8", fmt, issued_ns=time.time_ns() - hour)),  # stale
            signer.sign(_record("c-9", fmt, issued_ns=time.time_ns() + hour)),  # from the future: stale
            b"\x00SS\x01\x00broken frame",  # malformed signed frame
            signer.sign(_record("c-11", fmt)),  # still alive: accepted
        ]
        for payload in payloads:
            link.send(topic, b"", payload, qos=1)
        assert link.flush(10) == 0
        assert spin_until(executor, [], done=lambda: len(received) >= 2, timeout_s=15)
        spin_until(executor, [], timeout_s=1.0)  # nothing else may arrive
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        link.close()
        node.destroy_node()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output[-3000:]
    assert [c.command_id for c in received] == ["c-0", "c-11"], output[-3000:]
    assert received[0].kind == "pick" and received[0].robot_id == "amr_042"
    assert f"{ROUTE}: received 12, sent 2, dropped 10" in output
    expected = {"duplicate command id": 1, "bad signature": 3, "unsigned command": 1, "unknown signing key": 1,
                "addressed to another robot": 1, "stale issued_at": 2, "malformed": 1}
    for reason, count in expected.items():
        assert output.count(f"refused 1 ({reason}") == count, (reason, output[-3000:])
        assert _metric(metrics, reason) == count, (reason, metrics)
    assert "commands must be signed, trusted keys: coord-2026a" in output
    secret_lines = [line for line in secret.decode().splitlines() if "-----" not in line]
    assert not any(line in output or line in metrics for line in secret_lines)


def test_bad_trusted_key_file_exits_2_naming_it(tmp_path: Path, mosquitto: Mosquitto,
                                                 ros_env: dict[str, str]) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "coord-2026a.pub.pem").write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["uplink"]["port"] = mosquitto.port
    data["spool"] = {"path": str(tmp_path / "spool.db"), "max_mb": 16}
    data["commands"] = {"trusted_keys": str(trusted), "require_signed": True}
    config = tmp_path / "robot_bridge.yaml"
    config.write_text(yaml.safe_dump(data))
    result = subprocess.run([*NODE, "--config", str(config)], env=ros_env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"{trusted / 'coord-2026a.pub.pem'}: not a PEM public key" in result.stderr
    assert "Fix:" in result.stderr
