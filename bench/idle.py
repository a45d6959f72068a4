"""Benchmark: what the fleet's processes cost with nothing to do, in % of one core, with the shipped configs.

A robot bridge (config/robot_bridge.yaml) against a private Mosquitto; with `--kafka`, also an edge gateway
(config/edge_gateway.yaml) and a coordinator (config/coordinator.yaml) against a private Kafka. Each process
starts, settles (`--settle-s`), then its CPU time over `--window-s` is read from /proc (all its threads),
with the threads that took most. Goal (#20 follow-up): an idle robot bridge under 3 % of a core.
Last line: one JSON object.

  python bench/idle.py [--window-s 30] [--settle-s 8] [--kafka]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from swarm_bridge.signals import terminate_as_interrupt

REPO = Path(__file__).resolve().parents[1]
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(stat_path: Path) -> tuple[str, float]:
    """(name, CPU seconds) of a process or thread from its /proc stat file."""
    text = stat_path.read_text()
    fields = text[text.rindex(")") + 2:].split()
    return text[text.index("(") + 1:text.rindex(")")], (int(fields[11]) + int(fields[12])) / _TICK


def _threads(pid: int) -> dict[str, float]:
    """CPU seconds per thread (by tid and name) of `pid`."""
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name, seconds = _cpu_s(Path(f"/proc/{pid}/task/{tid}/stat"))
        except OSError:
            continue
        found[f"{tid} {name}"] = seconds
    return found


def idle_cpu(pid: int, window_s: float) -> dict[str, Any]:
    """CPU of `pid` (every thread) over `window_s`, in % of one core, and its three busiest threads."""
    before, threads_before, start = _cpu_s(Path(f"/proc/{pid}/stat"))[1], _threads(pid), time.monotonic()
    time.sleep(window_s)
    after, threads_after, span = _cpu_s(Path(f"/proc/{pid}/stat"))[1], _threads(pid), time.monotonic() - start
    busiest = sorted(((seconds - threads_before.get(tid, 0.0), tid) for tid, seconds in threads_after.items()),
                     reverse=True)[:3]
    return {"cpu_percent": round(100 * (after - before) / span, 2),
            "busiest_threads": {tid: round(100 * seconds / span, 2) for seconds, tid in busiest}}


def measure(command: Sequence[str], env: dict[str, str], *, settle_s: float, window_s: float,
            log: Path) -> dict[str, Any]:
    """Start `command`, let it settle, measure it idle, stop it (SIGTERM); fails if it died on the way."""
    with log.open("w") as out:
        process = subprocess.Popen(list(command), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        time.sleep(settle_s)
        if process.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited with {process.returncode} before the window:\n"
                               f"{log.read_text()[-2000:]}")
        figures = idle_cpu(process.pid, window_s)
        if process.poll() is not None:
            raise RuntimeError(f"{command[:4]} exited during the window:\n{log.read_text()[-2000:]}")
        return figures
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def robot_bridge_idle(mqtt_port: int, env: dict[str, str], tmp: Path, *, settle_s: float,
                      window_s: float) -> dict[str, Any]:
    """The shipped robot bridge config, pointed at the broker on `mqtt_port`, with no ROS publisher anywhere."""
    command = [sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge", "--config",
               str(REPO / "config" / "robot_bridge.yaml"), "--set", f"uplink.port={mqtt_port}",
               "--set", f"spool.path={tmp / 'spool.db'}"]
    return measure(command, env, settle_s=settle_s, window_s=window_s, log=tmp / "robot_bridge.log")


def gateway_idle(mqtt_port: int, bootstrap: str, env: dict[str, str], tmp: Path, *, settle_s: float,
                 window_s: float) -> dict[str, Any]:
    """The shipped edge gateway config, pointed at the brokers, with no robot anywhere."""
    command = [sys.executable, "-m", "swarm_bridge.cli", "gateway", "--config",
               str(REPO / "config" / "edge_gateway.yaml"), "--set", f"mqtt.port={mqtt_port}",
               "--set", f"kafka.bootstrap={bootstrap}"]
    return measure(command, env, settle_s=settle_s, window_s=window_s, log=tmp / "gateway.log")


def coordinator_idle(kafka_port: int, env: dict[str, str], tmp: Path, *, settle_s: float,
                     window_s: float) -> dict[str, Any]:
    """The shipped coordinator config (mode kafka), pointed at the Kafka on `kafka_port`, with no robot anywhere."""
    command = [sys.executable, "-m", "swarm_bridge.cli", "coordinator", "--config",
               str(REPO / "config" / "coordinator.yaml"), "--set", f"kafka.port={kafka_port}"]
    return measure(command, env, settle_s=settle_s, window_s=window_s, log=tmp / "coordinator.log")


def main() -> int:
    from swarm_bridge.brokers import Kafka, Mosquitto, free_port, lease_domain

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window-s", type=float, default=30.0, help="seconds measured (default 30)")
    parser.add_argument("--settle-s", type=float, default=8.0, help="seconds after the start before (default 8)")
    parser.add_argument("--kafka", action="store_true", help="also the gateway and the coordinator (starts Kafka)")
    args = parser.parse_args()
    figures: dict[str, Any] = {"bench": "idle", "window_s": args.window_s}
    with lease_domain() as domain, tempfile.TemporaryDirectory(prefix="swarm-idle-") as tmp_dir:
        tmp = Path(tmp_dir)
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain.domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
               "XDG_STATE_HOME": str(tmp / "state")}
        with Mosquitto(run_dir=tmp / "mosquitto", port=free_port()) as broker:
            bridge = robot_bridge_idle(broker.port, env, tmp, settle_s=args.settle_s, window_s=args.window_s)
            figures["robot_bridge_idle_cpu_percent"] = bridge["cpu_percent"]
            figures["robot_bridge_busiest_threads"] = bridge["busiest_threads"]
            print(f"robot bridge idle: {bridge['cpu_percent']} % of a core ({bridge['busiest_threads']})", flush=True)
            if args.kafka:
                with Kafka(run_dir=tmp / "kafka", port=free_port()) as kafka:
                    for name, run in (
                            ("gateway", lambda: gateway_idle(broker.port, kafka.bootstrap, env, tmp,
                                                             settle_s=args.settle_s, window_s=args.window_s)),
                            ("coordinator", lambda: coordinator_idle(kafka.port, env, tmp, settle_s=args.settle_s,
                                                                     window_s=args.window_s))):
                        got = run()
                        figures[f"{name}_idle_cpu_percent"] = got["cpu_percent"]
                        figures[f"{name}_busiest_threads"] = got["busiest_threads"]
                        print(f"{name} idle: {got['cpu_percent']} % of a core ({got['busiest_threads']})", flush=True)
    figures["robot_bridge_idle_goal_met"] = figures["robot_bridge_idle_cpu_percent"] < 3.0
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        sys.exit(main())
