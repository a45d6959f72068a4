"""The robot bridge under outages: a robot_bridge process and an odometry source on ROS, and what its taps saw."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
import yaml

from swarm_bridge.codec import decode_json
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.sim.taps import KafkaTap, MqttTap, TappedRecord

NODE = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge"]
ROBOT = "amr_042"
RUN = 1 << 32


def odom_config(tmp_path: Path, *, port: int, robot_id: str = ROBOT, fleet: str, kind: str = "mqtt",
                max_mb: float = 64, reconnect_s: tuple[float, float] = (0.2, 1.0),
                uplink: dict[str, Any] | None = None) -> Path:
    """`tmp_path`/robot.yaml: a robot bridge with one route, /robot/odom (JSON) up as telemetry/odometry, on an
    uplink of `kind` at `port` that may be down at start, spooling to `tmp_path`/spool.db."""
    data = {
        "robot_id": robot_id, "fleet": fleet,
        "uplink": {"kind": kind, "port": port, "require_at_start": False, "connect_timeout_s": 2,
                   "reconnect_min_s": reconnect_s[0], "reconnect_max_s": reconnect_s[1], **(uplink or {})},
        "spool": {"path": str(tmp_path / "spool.db"), "max_mb": max_mb},
        "routes": [{"topic": "/robot/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry",
                    "stream": "odometry", "qos": "reliable", "format": "json"}],
    }
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def start_node(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*NODE, "--config", str(config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


class OdomSource:
    """Publishes Odometry on /robot/odom at a steady rate, numbering messages in pose.position.x and naming
    itself in child_frame_id (`tag`), so a record from any other publisher is told apart."""

    def __init__(self, context: Any) -> None:
        from nav_msgs.msg import Odometry

        self._cls = Odometry
        self.tag = f"odom-source-{os.getpid()}-{time.monotonic_ns()}"
        self.node = rclpy.create_node("odom_source", context=context)
        self.publisher = self.node.create_publisher(Odometry, "/robot/odom", qos_preset("reliable", depth=1000))
        self.executor = make_executor(context)
        self.sent = 0

    def wait_for_bridge(self) -> None:
        assert spin_until(self.executor, [self.node], done=lambda: self.publisher.get_subscription_count() > 0,
                          timeout_s=30)

    def run(self, seconds: float, rate_hz: float, *, at: dict[float, Callable[[], None]] | None = None) -> None:
        """Publish for `seconds`; call each `at[t]` once `t` seconds in (e.g. stop the broker)."""
        actions = sorted((at or {}).items())
        start = time.monotonic()
        period = 1.0 / rate_hz
        count = 0
        while (elapsed := time.monotonic() - start) < seconds:
            while actions and elapsed >= actions[0][0]:
                actions.pop(0)[1]()
            msg = self._cls()
            msg.child_frame_id = self.tag
            msg.pose.pose.position.x = float(self.sent)
            self.publisher.publish(msg)
            self.sent += 1
            count += 1
            delay = start + count * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        self.node.destroy_node()


def arrived_seqs(records: list[TappedRecord]) -> list[int]:
    """Sequence numbers in arrival order, each kept at its first arrival (resends are duplicates)."""
    return list(dict.fromkeys(decode_json(r.payload).seq for r in records))


def wait_for_seqs(tap: MqttTap | KafkaTap, count: int, timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while len(seqs := arrived_seqs(tap.snapshot())) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return seqs


def stop_node(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output[-3000:]
    return output
