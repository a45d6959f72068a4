"""A `format: json` route under load: batched records are still JSON on the wire, and every reader reads them.

Real robot_bridge process, real rclpy publisher, real Mosquitto; the MQTT messages are read as they came.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rclpy
import yaml

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.codec import decode_json
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.sim.taps import MqttTap

pytestmark = pytest.mark.integration

NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
COUNT = 3000
TOPIC = "swarm/json_load/amr_042/event/task_status"
ROUTE = f"route ros:/amr_042/task_status -> mqtt:{TOPIC}"


def test_a_json_route_stays_json_on_the_wire_when_records_are_batched(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str]) -> None:
    from swarm_bridge_msgs.msg import TaskStatus

    config = tmp_path / "robot.yaml"
    config.write_text(yaml.safe_dump({
        "robot_id": "amr_042", "fleet": "json_load",
        "uplink": {"kind": "mqtt", "port": mosquitto.port, "batch_max_records": 64},
        "spool": {"path": str(tmp_path / "spool.db"), "max_mb": 64},
        "routes": [{"topic": "/amr_042/task_status", "type": "swarm_bridge_msgs/msg/TaskStatus",
                    "channel": "event", "stream": "task_status", "qos": "reliable", "format": "json"}],
    }))
    wire = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[TOPIC], split=False)  # messages as they came
    records = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[TOPIC])  # what every reader gets
    proc = subprocess.Popen([*NODE, "--config", str(config)], env=ros_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("status_flood", context=ros_context)
    publisher = node.create_publisher(TaskStatus, "/amr_042/task_status", qos_preset("reliable"))
    executor = make_executor(ros_context)
    try:
        assert spin_until(executor, [node], done=lambda: publisher.get_subscription_count() > 0, timeout_s=30)
        for i in range(COUNT):  # as fast as rclpy goes: the broker is still acknowledging, records batch up
            publisher.publish(TaskStatus(task_id=f"t{i}", robot_id="amr_042", state=TaskStatus.STATE_RUNNING))
        spin_until(executor, [], done=lambda: len(records.snapshot()) >= COUNT, timeout_s=60)
        spin_until(executor, [], timeout_s=1.0)
    finally:
        node.destroy_node()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        wire.close()
        records.close()
    assert proc.returncode == 0, output[-3000:]
    sent = int(output.split(f"{ROUTE}: received ")[1].split("sent ")[1].split(",")[0])
    messages = [json.loads(r.payload) for r in wire.snapshot()]  # any plain JSON consumer: no binary frames
    arrays = [m for m in messages if isinstance(m, list)]
    assert arrays, f"no batch in {len(messages)} messages: the test did not load the bridge"
    assert all(isinstance(m, dict) for m in messages if not isinstance(m, list))
    assert all(isinstance(r, dict) for array in arrays for r in array)
    flat = [r for m in messages for r in (m if isinstance(m, list) else [m])]
    envelopes = [decode_json(r.payload) for r in records.snapshot()]
    assert len(flat) == len(envelopes) == sent >= COUNT // 2, output[-2000:]
    assert [e.seq for e in envelopes] == sorted({e.seq for e in envelopes})  # each once, in order
    assert [r["seq"] for r in flat] == [e.seq for e in envelopes]
