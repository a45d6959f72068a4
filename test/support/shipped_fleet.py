"""The shipped configs run as a user runs them: child processes from config/, their output kept, and bounded waits."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CLI = [sys.executable, "-m", "swarm_bridge.cli"]
NODES = [sys.executable, "-m", "swarm_bridge.nodes"]
DEADLINE_S = 300.0  # generous: a shared, busy machine; the loop ends as soon as the task is done


class Processes:
    """The fleet's processes, each logging to a file of its own; stopped with SIGINT (then killed) at the end."""

    def __init__(self, logs: Path, env: dict[str, str]) -> None:
        self.logs, self.env = logs, env
        self.procs: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str]) -> None:
        out = (self.logs / f"{name}.log").open("wb")
        self.procs[name] = (subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT), out)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, (proc, _out) in self.procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)[-3000:]}")

    def tails(self) -> str:
        return "\n".join(f"--- {name} ---\n{self.log(name)[-2500:]}" for name in self.procs)

    def stop(self) -> None:
        for proc, _out in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, out in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()


def wait_until(what: str, ready: Callable[[], bool], procs: Processes, deadline_s: float = DEADLINE_S) -> None:
    """Poll `ready` until true; fail (with every process's log) when a process died or the deadline passed."""
    deadline = time.monotonic() + deadline_s
    while not ready():
        procs.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {deadline_s:.0f} s\n{procs.tails()}")
        time.sleep(0.5)


def fleet_status(coordinator_args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """`swarm-bridge fleet status --json` with the coordinator's config."""
    result = subprocess.run([*CLI, "fleet", "status", *coordinator_args, "--json"], env=env, capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        return {}
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def robot_id() -> str:
    doc = yaml.safe_load((CONFIG / "robot_bridge.yaml").read_text())
    return str(doc["robot_id"])
