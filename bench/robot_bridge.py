"""Benchmark: the robot bridge against a bare rclpy raw subscriber, Odometry -> Avro -> MQTT QoS 1, one run.

Measures, with a private Mosquitto:
  publisher   one process (two for the bare limit, each at half the rate) publishes Odometry serialized once,
              each message that CDR with its own stamp and pose.position.x put in, through rclpy's raw publish,
              paced: it reaches past what either subscriber takes (the old one, building and serializing a Python
              message each time, offered about 22k/s and was the ceiling of both figures); its offered rate and the
              share of the time its thread was busy are printed at each step
  bare limit  a raw rclpy subscriber (EventsExecutor) doing nothing else, with the bridge's reader limits (10,000
              deep; behind, it replaces its oldest unread sample): the highest paced rate it takes with nothing
              lost, in steps of 10k/s from 10k/s to the first loss, then of 2.5k/s below it
  sustained   the bridge at 0.3, 0.4, 0.5, 0.55, ... 1.0 of the bare limit: the highest rate it carries with
              nothing lost (records counted at the broker; the first step that loses anything ends the search);
              the rate counted is the one the publisher actually offered; ratio_sustained_to_bare is the goal's
              figure. Both are found the same way: offered more than it takes, a reliable reader is overrun and
              Fast DDS repairs and replaces samples, publisher and subscriber both slowing down, so a rate "as fast
              as it goes" measured Fast DDS's overload, not the subscriber
  latency     at 1 kHz, header.stamp (set as the message leaves) -> arrival, at the bare subscriber and at the
              broker via the bridge
  memory      the bridge's RSS at the start and end of a soak at 1 kHz
  idle        the CPU of a robot bridge with the shipped config/robot_bridge.yaml and nothing to send, over 30 s
              (% of one core; bench/idle.py; goal under 3 %)
Prints bridge/limit and ends with one JSON line.

  python bench/robot_bridge.py [--quick] [--ratio-only] [--soak-s S]
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
from swarm_bridge.ros.reader_limits import PROFILES_ENV, use_reader_limits
from swarm_bridge.signals import terminate_as_interrupt
from swarm_bridge.sim.taps import MqttTap

TOPIC = "/bench/odom"
# The sustained steps, as shares of the bare limit measured in the same run: the ratio the goal names (>= 0.6), to 0.05
STEPS = (0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
# The bare limit's steps (msgs/s): from BARE_FIRST by BARE_COARSE to the first loss, then by BARE_FINE up to it
BARE_FIRST, BARE_COARSE, BARE_FINE, BARE_LAST = 10_000, 10_000, 2_500, 200_000
# Publisher processes feeding the bare subscriber, each at its share of the rate: one Python publisher tops out near
# 35-40k/s paced (blocked in Fast DDS's write), below what a bare subscriber takes, which made the bare limit the
# publisher's in two of three quiet runs. The bridge's steps (at most the bare limit's 0.6-1.0) keep one publisher.
BARE_PUBLISHERS = 2
DESTINATION = "swarm/bench/amr_b/telemetry/odometry"
QOS_DEPTH = 10000  # the history of the bridge's route (qos reliable) and of the bare subscriber's reader

PUBLISHER = textwrap.dedent('''
    import json, struct, sys, time, rclpy
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
    # Serialized once; each message is that CDR with its own stamp (bytes 4-12) and pose.position.x (= i) put in:
    # converting a Python Odometry to C and serializing it cost this process ~25 us a message, more than a
    # subscriber takes, so the publisher was the bench's ceiling.
    msg, mark = Odometry(), 1.2345678901e300
    msg.pose.pose.position.x = mark
    raw = serialize_message(msg)
    at = raw.find(struct.pack("<d", mark))
    pack = struct.Struct(f"<4siI{at - 12}sd{len(raw) - at - 8}s").pack
    head, middle, tail = raw[:4], raw[12:at], raw[at + 8:]
    sec = nanosec = 0
    refused = 0
    handle = pub.handle
    with handle:
        publish_raw = handle.publish_raw
        start, busy_start = time.monotonic(), time.thread_time()
        for i in range(count):
            if rate:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sec, nanosec = divmod(time.time_ns(), 1_000_000_000)  # stamped as it leaves, not before the wait
            data = pack(head, sec, nanosec, middle, float(i), tail)
            while True:
                try:
                    publish_raw(data)
                    break
                except Exception:
                    refused += 1
                    time.sleep(0.0005)  # the reader is behind: reliable QoS pushes back
        span, busy = time.monotonic() - start, time.thread_time() - busy_start
    print(json.dumps({"published": count, "offered_per_s": count / span if span > 0 else 0.0,
                      "busy": busy / span if span > 0 else 0.0, "refused": refused}), flush=True)
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
    qos = QoSProfile(depth=QOS_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Odometry, "TOPIC_NAME", on_raw, qos, raw=True)
    ex = EventsExecutor(); ex.add_node(node)
    deadline = time.monotonic() + seconds
    while len(times) < count and time.monotonic() < deadline:
        ex.spin_once(timeout_sec=0.05)
        if times and time.monotonic() - times[-1] > 3.0:
            break  # nothing for 3 s: the rest was lost (the publisher outran it)
    span = (times[-1] - times[0]) if len(times) > 1 else float("nan")
    print(json.dumps({"received": len(times), "span_s": span, "latency_ns": lat}))
''').replace("TOPIC_NAME", TOPIC).replace("QOS_DEPTH", str(QOS_DEPTH))


def python() -> str:
    return sys.executable


def run_bare(count: int, rate: float, env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """Publish `count` Odometry at `rate` to a bare rclpy subscriber: what it received, over which span, latencies.
    Its reader has the bridge's reader limits (`bare_env`): when it is behind it replaces its oldest unread sample, as
    the bridge's does, instead of refusing samples (Fast DDS repairs those only at its heartbeats: with the default
    limits, the old bench's limit swung 17k-44k/s between quiet runs)."""
    each = count // BARE_PUBLISHERS
    sub = subprocess.Popen([python(), "-c", BARE, str(each * BARE_PUBLISHERS), str(timeout_s)], env=env,
                           stdout=subprocess.PIPE, text=True)
    pubs = [subprocess.Popen([python(), "-c", PUBLISHER, str(each), str(rate / BARE_PUBLISHERS), "1"], env=env,
                             stdout=subprocess.PIPE, text=True) for _ in range(BARE_PUBLISHERS)]
    out, _ = sub.communicate(timeout=timeout_s + 30)
    reports = [publisher(pub.communicate(timeout=60)[0]) for pub in pubs]
    result: dict[str, Any] = json.loads(out)
    result["received"] += count - each * BARE_PUBLISHERS  # the remainder no publisher sent is not a loss
    result.update({"offered_per_s": sum(r["offered_per_s"] for r in reports),
                   "publisher_busy": max(r["publisher_busy"] for r in reports),
                   "refused": sum(r["refused"] for r in reports)})
    return result


def publisher(out: str) -> dict[str, Any]:
    """The publisher's own figures: the rate it offered, the share of that time its thread was busy (well under 1:
    it waited for the subscriber, which is then the limit, not the publisher), how often the reader pushed back."""
    lines = out.strip().splitlines()
    if not lines:
        return {"offered_per_s": float("nan"), "publisher_busy": float("nan"), "refused": 0}
    report = json.loads(lines[-1])
    return {"offered_per_s": report["offered_per_s"], "publisher_busy": report["busy"], "refused": report["refused"]}


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
            "rss_start_kb": rss_start, "rss_end_kb": rss_end, **publisher(out)}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_ratio(figures: dict[str, Any]) -> None:
    print(f"sustained   highest loss-free rate: bare rclpy raw {figures['bare_per_s']}/s, bridge "
          f"{figures['bridge_sustained_per_s']}/s (step {figures['bridge_sustained_step']}/s)  "
          f"bridge/limit {figures['ratio_sustained_to_bare']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (about a minute)")
    parser.add_argument("--soak-s", type=float, help="seconds of the 1 kHz soak (default 600, quick 10)")
    parser.add_argument("--ratio-only", action="store_true",
                        help="only the bare limit and the bridge's sustained steps (no idle, latency, soak)")
    args = parser.parse_args()
    soak_s = args.soak_s if args.soak_s is not None else (10.0 if args.quick else 600.0)
    latency_n = 3_000 if args.quick else 10_000
    figures: dict[str, Any] = {"bench": "robot_bridge", "quick": args.quick}
    with lease_domain() as domain, tempfile.TemporaryDirectory(prefix="swarm-bench-") as tmp_dir, \
            Mosquitto(run_dir=Path(tmp_dir) / "mosquitto", port=free_port()) as broker:
        # a domain no test session or other benchmark on this machine holds: nobody else's /robot/odom
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain.domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
        tmp = Path(tmp_dir)
        # the bare subscriber's reader gets the limits the bridge gives its own readers (one route 10,000 deep)
        limits = use_reader_limits(tmp / "dds", QOS_DEPTH)  # None: the user's profile file is in `env` already
        bare_env = env
        if limits is not None:
            os.environ.pop(PROFILES_ENV)  # for the bare subscriber only: the bridge writes its own
            bare_env = {**env, PROFILES_ENV: str(limits)}
        if not args.ratio_only:
            print("idle: the shipped robot bridge config, nothing to send, 30 s ...", flush=True)
            idle = robot_bridge_idle(broker.port, {**env, "XDG_STATE_HOME": str(tmp / "idle")}, tmp,
                                     settle_s=8.0, window_s=30.0)
            figures.update(idle_cpu_percent=idle["cpu_percent"], idle_goal_met=idle["cpu_percent"] < 3.0)
        step_s = 3.0 if args.quick else 10.0
        # The bare limit: the highest paced rate a bare subscriber takes with nothing lost, found as the bridge's is
        # (offered more than it takes, a reliable reader is overrun and Fast DDS repairs and replaces samples: both
        # the publisher and the subscriber then ran at half speed, so "as fast as it goes" measured that, not it).
        bare_rate, bare_steps = 0.0, []

        def bare_step(rate: int) -> tuple[int, float]:
            """One paced step of the bare subscriber: what it lost, and the rate the publisher really offered."""
            print(f"bare: {rate}/s for {step_s:g} s ...", end=" ", flush=True)
            run = run_bare(int(rate * step_s), float(rate), bare_env, timeout_s=step_s + 30)
            lost = int(rate * step_s) - run["received"]
            bare_steps.append({"step_per_s": rate, "offered_per_s": round(run["offered_per_s"]), "lost": lost,
                               "publisher_busy": round(run["publisher_busy"], 2)})
            print(f"offered {run['offered_per_s']:.0f}/s (publisher busy {run['publisher_busy']:.2f}), lost {lost}",
                  flush=True)
            return lost, float(run["offered_per_s"])

        good, bad = 0, 0
        rate = BARE_FIRST
        while rate <= BARE_LAST:
            lost, offered = bare_step(rate)
            if lost:
                bad = rate
                break
            good, bare_rate = rate, min(float(rate), offered)
            rate += BARE_COARSE
        fine = good + BARE_FINE
        while bad and fine < bad:  # between the last step it held and the first it lost, finer
            lost, offered = bare_step(fine)
            if lost:
                break
            bare_rate = min(float(fine), offered)
            fine += BARE_FINE
        held = [step for step in bare_steps if not step["lost"]]
        # the publisher's ceiling, not the subscriber's, when it fell short of the highest step the subscriber held
        publisher_bound = bool(held) and held[-1]["offered_per_s"] < 0.95 * held[-1]["step_per_s"]
        figures.update(bare_steps=bare_steps, bare_per_s=round(bare_rate), bare_publisher_bound=publisher_bound)
        if publisher_bound:
            print("  (the bare limit is the publisher's: it fell short of the step)", flush=True)
        if not bare_rate:
            print(json.dumps(figures))
            return 1

        sustained, sustained_step = 0.0, 0
        steps: list[dict[str, Any]] = []
        for share in STEPS:  # up to the first step that loses anything
            rate = int(round(share * bare_rate, -2))
            print(f"sustained: {rate}/s ({share:.2f} of bare) for {step_s:g} s ...", end=" ", flush=True)
            step = run_bridge(int(rate * step_s), float(rate), env, broker.port,
                              bridge_config(tmp / f"step{rate}", broker.port), step_s + 60)
            lost = int(rate * step_s) - step["arrived"]
            steps.append({"step_per_s": rate, "offered_per_s": round(step["offered_per_s"]), "lost": lost})
            print(f"offered {step['offered_per_s']:.0f}/s, lost {lost}", flush=True)
            if lost:
                break
            sustained, sustained_step = min(float(rate), step["offered_per_s"]), rate
        figures.update(steps=steps, bridge_sustained_step=sustained_step, bridge_sustained_per_s=round(sustained),
                       ratio_sustained_to_bare=round(sustained / bare_rate, 3))
        if args.ratio_only:
            print_ratio(figures)
            print(json.dumps(figures))
            return 0

        print(f"latency: {latency_n} Odometry at 1 kHz ...", flush=True)
        bare_lat = run_bare(latency_n, 1000.0, bare_env, timeout_s=60)["latency_ns"]
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
    print_ratio(figures)
    print(f"latency     p99 bare {figures['bare_latency_p99_ms']} ms, through the bridge to the broker "
          f"{figures['bridge_latency_p99_ms']} ms (added {figures['added_latency_p99_ms']} ms)")
    print(f"memory      RSS {figures['rss_start_kb']} kB -> {figures['rss_end_kb']} kB over {soak_s:g} s at 1 kHz")
    print(f"idle        {figures['idle_cpu_percent']} % of a core with nothing to send (goal under 3 %)")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        sys.exit(main())
