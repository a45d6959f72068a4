"""Faults around the robot bridge (ROS -> MQTT): a link that is delayed, dropped and cut by a proxy; the bridge
SIGKILLed at random (seeded) points; a tiny spool under an outage; skewed robot clocks; secrets in its logs.

Real rclpy, the real robot_bridge process, real Mosquitto on loopback. Each test prints one `FIGURES {...}` line
(sent, arrived, duplicates removed at the dedup point (robot, stream, seq), dropped with reason) for
docs/promises.md. The dedup point is the receiver's (robot, stream, seq): the bridge is at-least-once.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from robot_outage import ROBOT, OdomSource, odom_config
from robot_outage import arrived_seqs as _seqs
from robot_outage import start_node as _start_node
from robot_outage import stop_node as _stop
from robot_outage import wait_for_seqs as _wait_for
from runs import one_run

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.codec import decode_json
from swarm_bridge.ros.spin import spin_until
from swarm_bridge.sim.taps import MqttTap

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("SWARM_BRIDGE_FAULT_SEED", "0")) or random.randrange(1, 10**6)
PATTERN = f"swarm/faults/{ROBOT}/telemetry/#"


def _config(tmp_path: Path, port: int, *, max_mb: float = 64, uplink: dict[str, Any] | None = None) -> Path:
    return odom_config(tmp_path, port=port, fleet="faults", max_mb=max_mb, uplink=uplink)


def _arrivals(tap: MqttTap) -> list[int]:
    """Every seq in arrival order, duplicates included."""
    return [decode_json(r.payload).seq for r in tap.snapshot()]


def _drop(proxy: FaultProxy) -> None:
    proxy.drop()


def _inversion(records: list[Any], first_xs: list[int]) -> str:
    """Where the first arrivals leave publication order: the arrivals around it as (run, n, x)."""
    at = next(i for i in range(1, len(first_xs)) if first_xs[i] < first_xs[i - 1])
    index = next(i for i, r in enumerate(records) if int(r.body["pose"]["pose"]["position"]["x"]) == first_xs[at])
    near = [(r.seq >> 32, r.seq & 0xFFFFFFFF, int(r.body["pose"]["pose"]["position"]["x"]))
            for r in records[max(0, index - 8):index + 3]]
    return f"x={first_xs[at]} first arrived after x={first_xs[at - 1]} (seed {SEED}); arrivals (run, n, x): {near}"


def _figures(case: str, **figures: Any) -> None:
    print(f"FIGURES {json.dumps({'case': case, **figures})}")


def test_link_delayed_dropped_and_cut_by_a_proxy_delivers_everything_once_in_order(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str]) -> None:
    proxy = FaultProxy(mosquitto.port)
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[PATTERN], client_id=f"proxy-tap-{SEED}",
                  session_expiry_s=300)
    proc = _start_node(_config(tmp_path, proxy.port), ros_env)
    source = OdomSource(ros_context)

    def cut_mid_stream() -> None:
        proxy.cut_after(2500)
        proxy.drop()

    def refuse_and_drop() -> None:  # the reconnects of the next second are refused, whatever the client's backoff
        proxy.refuse(True)
        proxy.drop()

    def let_in() -> None:
        proxy.refuse(False)
        proxy.drop()

    schedule: dict[float, Callable[[], None]] = {
        2.0: lambda: proxy.delay(0.2), 4.0: lambda: proxy.delay(0.0), 5.0: lambda: _drop(proxy),
        6.0: cut_mid_stream, 8.0: lambda: proxy.cut_after(None), 8.5: lambda: _drop(proxy),
        9.0: refuse_and_drop, 10.0: let_in}
    try:
        source.wait_for_bridge()
        source.run(13.0, 200.0, at=schedule)
        seqs = _wait_for(tap, source.sent, timeout_s=60)
        output = _stop(proc)
    finally:
        source.close()
        if proc.poll() is None:
            proc.kill()
        tap.close()
        proxy.close()
    arrivals = _arrivals(tap)
    counts = proxy.counts
    _figures("robot bridge via proxy: delay 200 ms, drops, cuts mid-stream, refusals", sent=source.sent,
             arrived=len(seqs), duplicates_removed=len(arrivals) - len(seqs), dropped=0, proxy=counts)
    assert one_run(seqs) == list(range(source.sent)), f"{len(seqs)} of {source.sent}"
    assert counts["dropped"] + counts["cut"] >= 3 and counts["cut"] >= 1 and counts["refused"] >= 1, counts
    assert f"received {source.sent}, sent {source.sent}, dropped 0" in output
    assert "connection lost" in output or "disconnected" in output


def test_sigkilled_at_random_points_and_restarted_loses_nothing_it_spooled(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str]) -> None:
    """Each run's records arrive as a gap-free prefix 0..k-1, in order, once past the dedup point; what a run
    had not yet stored when it was killed (in memory, or published before the new run subscribed) is counted."""
    rng = random.Random(SEED)
    kills = [sum(rng.uniform(3.0, 4.5) for _ in range(i + 1)) for i in range(3)]  # 3..13.5 s, >= 3 s apart
    config = _config(tmp_path, mosquitto.port)
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[PATTERN], client_id=f"kill-tap-{SEED}",
                  session_expiry_s=300)
    source = OdomSource(ros_context)
    procs = [_start_node(config, ros_env)]

    def kill_and_restart() -> None:
        procs[-1].send_signal(signal.SIGKILL)
        procs[-1].communicate(timeout=30)
        procs.append(_start_node(config, ros_env))

    try:
        source.wait_for_bridge()
        source.run(kills[-1] + 1.0, 200.0, at={t: kill_and_restart for t in kills})
        spin_until(source.executor, [], timeout_s=1.0)
        after, deadline = source.sent, time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                decode_json(r.payload).body["pose"]["pose"]["position"]["x"] >= after for r in tap.snapshot()):
            source.run(0.5, 20.0)  # the last run's subscription matches after a moment
        spin_until(source.executor, [], timeout_s=1.0)
        output = _stop(procs[-1])
        time.sleep(1.0)
    finally:
        source.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        tap.close()
    arrivals = _arrivals(tap)
    seqs = list(dict.fromkeys(arrivals))
    runs = sorted({seq >> 32 for seq in seqs})
    per_run = {run: [seq & 0xFFFFFFFF for seq in seqs if seq >> 32 == run] for run in runs}
    records = [decode_json(r.payload) for r in tap.snapshot()]
    foreign = [r.body["child_frame_id"] for r in records if r.body["child_frame_id"] != source.tag]
    xs = [int(r.body["pose"]["pose"]["position"]["x"]) for r in records]
    first_xs = list(dict.fromkeys(xs))
    received_last = int(re.search(r"received (\d+), sent", output).group(1))  # type: ignore[union-attr]
    _figures("robot bridge SIGKILLed 3 times at seeded random points", seed=SEED, kills_s=[round(k, 2) for k in kills],
             published=source.sent, arrived=len(seqs), duplicates_removed=len(arrivals) - len(seqs),
             per_run={str(r): len(v) for r, v in per_run.items()},
             not_stored_at_kill_or_before_subscription=source.sent - len(seqs))
    assert not foreign, (f"{len(foreign)} records from another /robot/odom publisher ({sorted(set(foreign))[:3]}): "
                         f"another process on ROS domain {ros_env['ROS_DOMAIN_ID']}; their x are not ours")
    last_run = int(re.search(r"run (\d+), \d+ routes up", output).group(1))  # type: ignore[union-attr]
    # a run killed before it subscribed sends nothing
    assert runs[-1] == last_run and len(runs) <= len(kills) + 1, (runs, output[-3000:])
    for run, numbers in per_run.items():
        assert numbers == list(range(len(numbers))), f"run {run}: a hole or reorder (seed {SEED})"
    assert first_xs == sorted(first_xs), _inversion(records, first_xs)  # across restarts: in publication order
    assert len(per_run[runs[-1]]) == received_last  # the last run stopped cleanly: everything it received


def test_tiny_spool_under_an_outage_drops_oldest_and_counts_every_drop(
        tmp_path: Path, ros_context: Any, ros_env: dict[str, str]) -> None:
    port = free_port()  # no broker yet: everything goes to the spool, which holds ~20 KB
    config = _config(tmp_path, port, max_mb=0.02)
    proc = _start_node(config, ros_env)
    source = OdomSource(ros_context)
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=port)
    try:
        source.wait_for_bridge()
        source.run(2.0, 200.0)
        spin_until(source.executor, [], timeout_s=1.0)
        output = _stop(proc)
        broker.start()
        tap = MqttTap(host="127.0.0.1", port=port, patterns=[PATTERN])
        proc = _start_node(config, ros_env)
        deadline, last = time.monotonic() + 30, -1
        while (time.monotonic() < deadline and (count := len(tap.snapshot())) != last) or not count:
            last = count
            time.sleep(2.0)  # until nothing new arrives for 2 s: the spool has drained
        second = _stop(proc)
        seqs = _seqs(tap.snapshot())
        tap.close()
    finally:
        source.close()
        if proc.poll() is None:
            proc.kill()
        broker.stop()
    received = int(re.search(r"received (\d+), sent", output).group(1))  # type: ignore[union-attr]
    dropped = int(re.search(r"stream odometry: (\d+) records dropped by the spool \(spool full\)", output)
                  .group(1))  # type: ignore[union-attr]
    _figures("robot bridge, 20 KB spool, broker down", received=received, spooled_and_delivered=len(seqs),
             dropped_spool_full=dropped)
    assert re.search(r"spool .* full: \d+ records dropped since start", output), output[-2000:]
    assert dropped > 0 and received == len(seqs) + dropped, (received, len(seqs), dropped)
    assert one_run(seqs) == list(range(received - len(seqs), received))  # the oldest went first; the rest in order
    assert f"{dropped} records dropped by the spool" in second  # kept across restarts


def test_skewed_robot_clock_stamps_are_data_and_seq_orders(
        tmp_path: Path, mosquitto: Mosquitto, ros_context: Any, ros_env: dict[str, str]) -> None:
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[PATTERN], client_id=f"skew-tap-{SEED}",
                  session_expiry_s=300)
    proc = _start_node(_config(tmp_path, mosquitto.port), ros_env)
    source = OdomSource(ros_context)
    year = 10**9 * 3600 * 24 * 365
    skews = [0, 10 * year, -(time.time_ns() - 10**9), 10**9 * 3600, -10**9 * 3600]  # ROS stamps end in 2038
    try:
        source.wait_for_bridge()
        from nav_msgs.msg import Odometry

        for index in range(100):
            stamp = time.time_ns() + skews[index % len(skews)]
            msg = Odometry()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(max(stamp, 0), 10**9)
            msg.pose.pose.position.x = float(index)
            source.publisher.publish(msg)
            source.sent += 1
            time.sleep(0.005)
        seqs = _wait_for(tap, source.sent, timeout_s=30)
        output = _stop(proc)
    finally:
        source.close()
        if proc.poll() is None:
            proc.kill()
        tap.close()
    records = [decode_json(r.payload) for r in tap.snapshot()]
    stamps = {int(r.body["pose"]["pose"]["position"]["x"]): r.stamp_ns for r in records}
    _figures("robot clock skewed +10 years / epoch / +-1 h", sent=source.sent, arrived=len(seqs), dropped=0)
    assert one_run(seqs) == list(range(source.sent)), output[-2000:]
    assert max(stamps.values()) > time.time_ns() + 9 * year  # the future stamp kept as data
    assert min(stamps.values()) < 10**9 * 3600 * 24  # and the one near the epoch


def test_mqtt_password_never_appears_in_the_bridge_logs_even_when_refused(
        tmp_path: Path, ros_context: Any, ros_env: dict[str, str]) -> None:
    secret = "s3cr3t-" + os.urandom(6).hex()
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port(), users={ROBOT: secret})
    broker.start()
    config = _config(tmp_path, broker.port, uplink={"username": ROBOT, "password_env": "SWARM_TEST_ROBOT_PASSWORD"})
    outputs = []
    try:
        for password in ("wrong-" + secret[::-1], secret):  # a refused login first, then the right one
            proc = _start_node(config, {**ros_env, "SWARM_TEST_ROBOT_PASSWORD": password})
            try:
                output, _ = proc.communicate(timeout=6)  # refused: the bridge exits (3) at once
            except subprocess.TimeoutExpired:
                output = _stop(proc)
            outputs.append((password, output, proc.returncode))
    finally:
        broker.stop()
    (_, refused, refused_rc), (_, accepted, accepted_rc) = outputs
    assert refused_rc == 3 and re.search(r"refused.*not authori[sz]ed", refused, re.I), refused[-2000:]
    assert accepted_rc == 0 and "not authorized" not in accepted.lower(), accepted[-2000:]
    for password, output, _rc in outputs:
        assert password not in output and secret not in output
