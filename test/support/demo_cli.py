"""`swarm-bridge demo` run as a user runs it: a child process, its output captured."""

from __future__ import annotations

import subprocess
import sys

CLI = [sys.executable, "-m", "swarm_bridge.cli"]


def run_demo(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`swarm-bridge demo --no-progress ARGS` with `env`, within `timeout` seconds."""
    return subprocess.run([*CLI, "demo", "--no-progress", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
