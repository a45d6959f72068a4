"""Kafka not there at start: the coordinator (its CLI and its node executable) and the gateway each end with
exit status 3 and one clear line naming the bootstrap and the fix, and librdkafka's connection errors, repeated
every few milliseconds while it retries, are printed once and then counted, not printed hundreds of times."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from coordinator_fleet import write_config
from gateway_harness import write_config as write_gateway_config

from swarm_bridge.brokers import free_port

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT_S = 3.0  # librdkafka retries every ~50-100 ms, so this makes dozens of identical errors
MAX_REFUSED_LINES = 6  # one per client and callback at most; unsummarised there are dozens


def _run(command: list[str], env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    return done.returncode, (done.stdout + done.stderr).splitlines()


def _coordinator_config(tmp_path: Path, port: int) -> Path:
    doc = {"fleet": "test", "shards": 2, "registry": str(tmp_path / "registry"),
           "kafka": {"port": port, "connect_timeout_s": CONNECT_TIMEOUT_S},
           "capabilities": {"amr": ["navigate"]}}
    return write_config(doc, tmp_path / "coordinator.yaml")


def _check(lines: list[str], prefix: str, port: int, fix: str) -> None:
    """One line `prefix kafka://127.0.0.1:port: ... Fix: ...fix...`, no traceback, the repeats summarised."""
    text = "\n".join(lines)
    assert "Traceback" not in text, text[-3000:]
    clear = [line for line in lines if line.startswith(f"{prefix}kafka://127.0.0.1:{port}: ")]
    assert len(clear) == 1, text[-3000:]
    assert f"Fix: {fix}" in clear[0], clear[0]
    refused = [line for line in lines if "Connection refused" in line]
    assert 1 <= len(refused) <= MAX_REFUSED_LINES, f"{len(refused)} lines of 'Connection refused':\n" + text[-3000:]
    assert any("repeated" in line for line in lines), "the repeats were not counted:\n" + text[-3000:]


def test_coordinator_cli_says_kafka_is_not_there(tmp_path: Path) -> None:
    port = free_port()
    status, lines = _run([sys.executable, "-m", "swarm_bridge.cli", "coordinator", "--config",
                          str(_coordinator_config(tmp_path, port))])
    assert status == 3, "\n".join(lines[-40:])
    _check(lines, "coordinator: ", port, "start Kafka or fix kafka.host / kafka.port")


def test_fleet_coordinator_node_says_kafka_is_not_there(tmp_path: Path, ros_env: dict[str, str]) -> None:
    """As `ros2 run swarm_bridge fleet_coordinator` (and launch) start it."""
    port = free_port()
    status, lines = _run([sys.executable, "-m", "swarm_bridge.nodes", "fleet_coordinator", "--config",
                          str(_coordinator_config(tmp_path, port))], env=ros_env)
    assert status == 3, "\n".join(lines[-40:])
    _check(lines, "fleet_coordinator: ", port, "start Kafka or fix kafka.host / kafka.port")


def test_gateway_says_kafka_is_not_there(tmp_path: Path) -> None:
    port = free_port()
    config = write_gateway_config(tmp_path / "gw.yaml", gateway_id="gw_down", fleet="fleet_down", mqtt_port=free_port(),
                                  bootstrap=f"127.0.0.1:{port}", registry=tmp_path / "registry",
                                  kafka={"connect_timeout_s": CONNECT_TIMEOUT_S})
    status, lines = _run([sys.executable, "-m", "swarm_bridge.cli", "gateway", "--config", str(config)])
    assert status == 3, "\n".join(lines[-40:])
    _check(lines, "error: ", port, "start Kafka or fix kafka.bootstrap")
