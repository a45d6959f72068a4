"""Benchmark: the robot bridge against a bare rclpy raw subscriber, Odometry -> Avro -> MQTT QoS 1, one run.

Measures, with a private Mosquitto:
  throughput  a publisher process sends N Odometry as fast as it can; the bare limit is a raw rclpy
              subscriber (EventsExecutor) doing nothing else (median of three runs); the bridge is a
              robot_bridge process whose records are counted at the broker (every seq must arrive: zero loss)
  sustained   steps of 2k, 4k, 6k, ... 40k msgs/s: the highest rate the bridge carries with nothing lost (one try
              per step: the first step that loses anything ends the search); the rate counted is the one the
              publisher actually offered in that step (on a busy machine it can fall short of the step's)
  latency     at 1 kHz, header.stamp -> arrival, at the bare subscriber and at the broker via the bridge
  memory      the bridge's RSS at the start and end of a soak at 1 kHz
  idle        the CPU of a robot bridge with the shipped config/robot_bridge.yaml and nothing to send, over 30 s
              (% of one core; bench/idle.py; goal under 3 %)
Prints bridge/limit and ends with one JSON line.

  python bench/robot_bridge.py [--quick] [--count N] [--soak-s S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import yaml
from idle import robot_bridge_idle

from swarm_bridge.brokers import Mosquitto, free_port, lease_domain
from swarm_bridge.codec.registry import topic_name
from swarm_bridge.codec.wire import wire_decoder
from swarm_bridge.signals import terminate_as_interrupt
from swarm_bridge.sim.taps import MqttTap

TOPIC = "/bench/odom"
DESTINATION = "swarm/bench/amr_b/telemetry/odometry"

PUBLISHER = textwrap.dedent('''
    import json, sys, time, rclpy
    from nav_msgs.msg import Odometry
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    count, rate, expect = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node("bench_source")
    pub = node.create_publisher(Odometry, "TOPIC_NAME", QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE))
    while pub.get_subscription_count() < expect:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)
    msg = Odometry()
    start = time.monotonic()
    for i in range(count):
        msg.pose.pose.position.x = float(i)
        if rate:
            now = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        while True:
            try:
                pub.publish(msg)
                break
            except Exception:
                time.sleep(0.0005)  # the reader is behind: reliable QoS pushes back
    span = time.monotonic() - start
    print(json.dumps({"published": count, "offered_per_s": count / span if span > 0 else 0.0}), flush=True)
    time.sleep(2.0)
''').replace("TOPIC_NAME", TOPIC)

BARE = textwrap.dedent('''
    import sys, time, rclpy, json
    from nav_msgs.msg import Odometry
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.experimental import EventsExecutor
    count, seconds = int(sys.argv[1]), float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("bench_bare")
    times = []
    def on_raw(raw):
        times.append(time.monotonic())
        if len(raw) > 12 and raw[4:12] != bytes(8):
            sec, nsec = int.from_bytes(raw[4:8], "little"), int.from_bytes(raw[8:12], "little")
            lat.append(time.time_ns() - (sec * 10**9 + nsec))
    lat = []
    qos = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Odometry, "TOPIC_NAME", on_raw, qos, raw=True)
    ex = EventsExecutor(); ex.add_node(node)
    deadline = time.monotonic() + seconds
    while len(times) < count and time.monotonic() < deadline:
        ex.spin_once(timeout_sec=0.05)
    span = (times[-1] - times[0]) if len(times) > 1 else float("nan")
    print(json.dumps({"received": len(times), "span_s": span, "latency_ns": lat}))
''').replace("TOPIC_NAME", TOPIC)


def python() -> str:
    return sys.executable


def run_bare(count: int, rate: float, env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    sub = subprocess.Popen([python(), "-c", BARE, str(count), str(timeout_s)], env=env, stdout=subprocess.PIPE,
                           text=True)
    pub = subprocess.Popen([python(), "-c", PUBLISHER, str(count), str(rate), "1"], env=env,
                           stdout=subprocess.DEVNULL)
    out, _ = sub.communicate(timeout=timeout_s + 30)
    pub.wait(timeout=60)
    result: dict[str, Any] = json.loads(out)
    return result


def bridge_config(tmp: Path, port: int) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "bridge.yaml"
    path.write_text(yaml.safe_dump({
        "robot_id": "amr_b", "fleet": "bench",
        "uplink": {"kind": "mqtt", "port": port, "max_inflight": 1000},
        "spool": {"path": str(tmp / "spool.db"), "max_mb": 512},
        "routes": [{"topic": TOPIC, "type": "nav_msgs/msg/Odometry", "channel": "telemetry", "stream": "odometry",
                    "qos": "reliable", "format": "avro"}],
    }))
    return path


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def run_bridge(count: int, rate: float, env: dict[str, str], port: int, config: Path, timeout_s: float,
               soak: bool = False) -> dict[str, Any]:
    """Publish `count` Odometry through a robot_bridge process; what reached the broker, when, and RSS."""
    decoder = wire_decoder("nav_msgs/msg/Odometry", "avro", "mqtt", subject=topic_name(DESTINATION, ""))
    tap = MqttTap(host="127.0.0.1", port=port, patterns=[DESTINATION])
    bridge = subprocess.Popen([python(), "-m", "swarm_bridge.nodes", "robot_bridge", "--config", str(config)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rss_start = rss_end = 0
    try:
        pub = subprocess.Popen([python(), "-c", PUBLISHER, str(count), str(rate), "1"], env=env,
                               stdout=subprocess.PIPE, text=True)
        if soak:
            while not tap.records and pub.poll() is None:
                time.sleep(0.05)
            time.sleep(2.0)
            rss_start = rss_kb(bridge.pid)
        deadline = time.monotonic() + timeout_s
        last, last_change = 0, time.monotonic()
        while len(tap.records) < count and time.monotonic() < deadline:
            time.sleep(0.05)
            if len(tap.records) != last:
                last, last_change = len(tap.records), time.monotonic()
            elif pub.poll() is not None and time.monotonic() - last_change > 5.0:
                break  # the publisher is done and nothing arrived for 5 s: the rest is lost
        rss_end = rss_kb(bridge.pid)
        out, _ = pub.communicate(timeout=60)
        offered = json.loads(out.strip().splitlines()[-1])["offered_per_s"] if out.strip() else float("nan")
    finally:
        bridge.terminate()
        bridge.wait(timeout=30)
        tap.close()
    arrivals = tap.snapshot()
    envelopes = [decoder.decode(r.payload) for r in arrivals]
    seqs = [e.seq for e in envelopes]
    times = [r.arrived_ns for r in arrivals]
    return {"arrived": len(set(seqs)), "in_order": seqs == sorted(seqs),
            "span_s": (times[-1] - times[0]) / 1e9 if len(times) > 1 else float("nan"),
            "latency_ns": [r.arrived_ns - e.stamp_ns for r, e in zip(arrivals, envelopes, strict=True)],
            "rss_start_kb": rss_start, "rss_end_kb": rss_end, "offered_per_s": offered}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--count", type=int, help="messages in the throughput run")
    parser.add_argument("--soak-s", type=float, help="seconds of the 1 kHz soak (default 600, quick 10)")
    args = parser.parse_args()
    count = args.count or (20_000 if args.quick else 100_000)
    soak_s = args.soak_s if args.soak_s is not None else (10.0 if args.quick else 600.0)
    latency_n = 3_000 if args.quick else 10_000
    figures: dict[str, Any] = {"bench": "robot_bridge", "quick": args.quick, "count": count}
    with lease_domain() as domain, tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp_dir, \
            Mosquitto(run_dir=Path(tmp_dir) / "mosquitto", port=free_port()) as broker:
        # a domain no test session or other benchmark on this machine holds: nobody else's /robot/odom
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain.domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
        tmp = Path(tmp_dir)
        print("idle: the shipped robot bridge config, nothing to send, 30 s ...", flush=True)
        idle = robot_bridge_idle(broker.port, {**env, "XDG_STATE_HOME": str(tmp / "idle")}, tmp,
                                 settle_s=8.0, window_s=30.0)
        figures.update(idle_cpu_percent=idle["cpu_percent"], idle_goal_met=idle["cpu_percent"] < 3.0)
        print(f"throughput: {count} Odometry, as fast as the publisher goes ...", flush=True)
        # the limit is the median of three bare runs: one run on a shared machine varies by 2x
        bares = [run_bare(count, 0.0, env, timeout_s=120) for _ in range(3)]
        bare_rates = sorted(b["received"] / b["span_s"] for b in bares)
        bare, bare_rate = bares[0], bare_rates[1]
        figures["bare_runs_per_s"] = [round(rate) for rate in bare_rates]
        bridged = run_bridge(count, 0.0, env, broker.port, bridge_config(tmp / "throughput", broker.port), 300)
        bridge_rate = bridged["arrived"] / bridged["span_s"]
        figures.update(bare_received=bare["received"], bare_per_s=round(bare_rate),
                       bridge_arrived=bridged["arrived"], bridge_lost=count - bridged["arrived"],
                       bridge_in_order=bridged["in_order"], bridge_per_s=round(bridge_rate),
                       ratio_bridge_to_bare=round(bridge_rate / bare_rate, 3))

        step_s = 3.0 if args.quick else 10.0
        sustained, sustained_step = 0.0, 0
        for rate in range(2000, 40001, 2000):  # up to the first step that loses anything
            print(f"sustained: {rate}/s for {step_s:g} s ...", flush=True)
            step = run_bridge(int(rate * step_s), float(rate), env, broker.port,
                              bridge_config(tmp / f"step{rate}", broker.port), step_s + 60)
            figures[f"step_{rate}_lost"] = int(rate * step_s) - step["arrived"]
            figures[f"step_{rate}_offered_per_s"] = round(step["offered_per_s"])
            if figures[f"step_{rate}_lost"]:
                break
            sustained, sustained_step = min(float(rate), step["offered_per_s"]), rate
        figures.update(bridge_sustained_step=sustained_step, bridge_sustained_per_s=round(sustained),
                       ratio_sustained_to_bare=round(sustained / bare_rate, 3))

        print(f"latency: {latency_n} Odometry at 1 kHz ...", flush=True)
        bare_lat = run_bare(latency_n, 1000.0, env, timeout_s=60)["latency_ns"]
        lat = run_bridge(latency_n, 1000.0, env, broker.port, bridge_config(tmp / "latency", broker.port), 60)
        for name, values in (("bare", bare_lat), ("bridge", lat["latency_ns"])):
            for q in (0.5, 0.99):
                figures[f"{name}_latency_p{round(q * 100)}_ms"] = round(percentile(values, q) / 1e6, 3)
        figures["added_latency_p99_ms"] = round(figures["bridge_latency_p99_ms"] - figures["bare_latency_p99_ms"], 3)

        print(f"soak: {soak_s:g} s at 1 kHz ...", flush=True)
        soak = run_bridge(int(soak_s * 1000), 1000.0, env, broker.port, bridge_config(tmp / "soak", broker.port),
                          soak_s + 60, soak=True)
        figures.update(soak_s=soak_s, soak_lost=int(soak_s * 1000) - soak["arrived"],
                       rss_start_kb=soak["rss_start_kb"], rss_end_kb=soak["rss_end_kb"])
    print(f"throughput  bare rclpy raw {figures['bare_per_s']:>7}/s  bridge {figures['bridge_per_s']:>7}/s  "
          f"bridge/limit {figures['ratio_bridge_to_bare']}  lost {figures['bridge_lost']} (offered at full speed)")
    print(f"sustained   highest loss-free step {figures['bridge_sustained_step']}/s, offered "
          f"{figures['bridge_sustained_per_s']}/s  bridge/limit {figures['ratio_sustained_to_bare']}")
    print(f"latency     p99 bare {figures['bare_latency_p99_ms']} ms, through the bridge to the broker "
          f"{figures['bridge_latency_p99_ms']} ms (added {figures['added_latency_p99_ms']} ms)")
    print(f"memory      RSS {figures['rss_start_kb']} kB -> {figures['rss_end_kb']} kB over {soak_s:g} s at 1 kHz")
    print(f"idle        {figures['idle_cpu_percent']} % of a core with nothing to send (goal under 3 %)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        sys.exit(main())
