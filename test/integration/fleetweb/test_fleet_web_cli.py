"""`swarm-bridge fleet web` as a user runs it, when its source or its port cannot be had: one line naming what
and the fix, and the exit status the docs give (3: the source is unreachable, 2: the page cannot listen)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_bridge.brokers import Mosquitto, free_port

CLI = [sys.executable, "-m", "swarm_bridge.cli"]


def _site_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(f"fleet: f\nmode: mqtt\nmqtt: {{host: 127.0.0.1, port: {port}, connect_timeout_s: 2}}\n"
                    "capabilities: {amr: [navigate]}\n")
    return path


@pytest.mark.integration
def test_an_unreachable_broker_exits_3_naming_it(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = subprocess.run([*CLI, "fleet", "web", "--config", str(_site_config(tmp_path, port)), "--port", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert f"mqtt://127.0.0.1:{port}" in result.stderr and "start the broker" in result.stderr


@pytest.mark.integration
def test_a_port_taken_exits_2_naming_it(tmp_path: Path, mosquitto: Mosquitto) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([*CLI, "fleet", "web", "--config", str(_site_config(tmp_path, mosquitto.port)),
                                 "--port", str(port)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "choose another port" in result.stderr
