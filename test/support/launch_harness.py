"""What the launch tests share: `ros2 launch swarm_bridge FILE` run as a ROS install runs it, its log, and the
checks of what the gateway and demo launches do (run for a pip install and for a colcon build).

The environment is what a user has after a pip install or `source install/setup.bash` of a colcon build: the
package found through AMENT_PREFIX_PATH, `ros2` and `python3` on PATH, and no `swarm-bridge` console script on
PATH (a colcon install has none), so a launch file that needs one fails here as it does on a robot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import yaml
from gateway_harness import read_topic

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.transport import MqttLink

REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
DEMO_BAG = "polymath_cmd_vel_mcap"  # a small real bag: the demo's whole chain in well under a minute
PYVER = f"python{sys.version_info.major}.{sys.version_info.minor}"


# what a build makes or a run leaves in the working tree: never copied into a build's own source tree
_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", ".run", "build", "install", "log", "*.egg-info", "__pycache__",
                                     ".mypy_cache", ".ruff_cache", ".pytest_cache")


def source_copy(dest: Path) -> Path:
    """This repository's sources copied to `dest`: pip and colcon build in their source tree, and two test files
    building in one tree at once (two xdist workers) break each other's build/ and egg-info."""
    shutil.copytree(REPO, dest, ignore=_NOT_SOURCE, symlinks=True)
    return dest


def launch_path(tmp: Path, ros2: Path) -> str:
    """PATH with `python3`, `python` (this venv's) and `ros2` first, and the venv's bin (console scripts) left out."""
    bindir = tmp / "ros-bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name, target in (("python3", sys.executable), ("python", sys.executable), ("ros2", str(ros2))):
        wrapper = bindir / name
        wrapper.write_text(f'#!/bin/sh\nexec "{target}" "$@"\n')  # exec by its own path: the venv stays a venv
        wrapper.chmod(0o755)
    kept = [p for p in os.environ["PATH"].split(os.pathsep) if p and Path(p).resolve() != (VENV / "bin").resolve()]
    return os.pathsep.join([str(bindir), *kept])


def pip_prefix_env(base: dict[str, str], prefix: Path, path: str, log_dir: Path) -> dict[str, str]:
    """Environment of `ros2 launch` for a `pip install --prefix PREFIX .` (what install-ros2-launch prints)."""
    site = prefix / "lib" / PYVER / "site-packages"
    return {**base, "PATH": path, "AMENT_PREFIX_PATH": f"{prefix}:{VENV}", "PYTHONPATH": str(site),
            "ROS_LOG_DIR": str(log_dir)}


def colcon_command(workspace: Path, command: list[str]) -> list[str]:
    """`command` after `source install/setup.bash` of a colcon workspace, as a user runs it."""
    return ["bash", "-c", f'source "{workspace}/install/setup.bash" && exec "$@"', "bash", *command]


class LaunchRun:
    """`ros2 launch ...` in the background, its output collected line by line; stopped with SIGINT as Ctrl-C."""

    def __init__(self, command: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def failed(self) -> bool:
        """The launch ended, or one of its processes died (`ros2 launch` itself exits 0 then)."""
        return self.proc.poll() is not None or "process has died" in self.output

    def wait_until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Poll `done`; AssertionError with the launch log when the launch fails first or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        while not done():
            if self.failed() or time.monotonic() > deadline:
                problem = "the launch failed" if self.failed() else f"timed out after {timeout_s:g} s"
                raise AssertionError(f"{problem} waiting for {what}; launch log:\n{self.output[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> str:
        """Ctrl-C (SIGINT), wait for the launch to take its processes down, return the whole log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return self.output

    def wait(self, timeout_s: float) -> str:
        """Wait for a launch that ends by itself (e.g. the demo); SIGINT after `timeout_s`; the whole log."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return self.stop()
        self._reader.join(timeout=10)
        return self.output


def ended_cleanly(output: str) -> None:
    """No process of the launch died, and they ended (after Ctrl-C or by themselves) with status 0."""
    assert "process has died" not in output, output[-4000:]
    assert "process has finished cleanly" in output, output[-4000:]


def gateway_forwards(tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, start: Callable[[Path], LaunchRun]) -> str:
    """Start a gateway from the shipped config (brokers' ports, a registry in `tmp_path`) with `start(config)`,
    publish a presence on MQTT until Kafka has it, stop the launch; it must end cleanly. Returns its output."""
    data = yaml.safe_load((REPO / "config/edge_gateway.yaml").read_text())
    data["mqtt"]["port"] = mosquitto.port
    data["kafka"]["bootstrap"] = kafka.bootstrap
    data["registry"] = str(tmp_path / "registry")
    data["gateway_id"] = f"launch_{uuid.uuid4().hex[:6]}"
    config = tmp_path / "edge_gateway.yaml"
    config.write_text(yaml.safe_dump(data))
    robot = f"amr-{uuid.uuid4().hex[:6]}"
    document = json.dumps({"robot_id": robot, "state": "online", "reason": "connected"}).encode()
    link = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id=f"launch-robot-{robot}")
    link.connect()
    run = start(config)

    def in_kafka() -> bool:
        link.send(f"swarm/warehouse_a/{robot}/presence/status", b"", document, qos=1)
        return any(m.value() == document for m in read_topic(kafka.bootstrap, "fleet.presence.status", count=10**6,
                                                             timeout_s=2))

    try:
        run.wait_until(in_kafka, 120, f"{robot}'s presence in Kafka fleet.presence.status")
    finally:
        output = run.stop()
        link.close()
    ended_cleanly(output)
    return output


def demo_delivers(tmp_path: Path, shared_bags: Path, start: Callable[[dict[str, object]], LaunchRun]) -> None:
    """Run the demo launch with `start(arguments)` on one small real bag; check its report."""
    bags = tmp_path / "bags"
    bags.mkdir()
    (bags / DEMO_BAG).symlink_to(shared_bags / DEMO_BAG)
    report = tmp_path / "report.json"
    run = start({"bags": bags, "rate": 20, "report_json": report, "plot": tmp_path / "demo.png"})
    output = run.wait(900)
    assert "every replayed message was delivered once" in output, output[-4000:]
    figures = json.loads(report.read_text())
    assert figures["totals"]["delivered"] == figures["totals"]["in_bags"] > 0
    assert figures["tasks"]["submitted"] == figures["tasks"]["done"] > 0
    ended_cleanly(output)
