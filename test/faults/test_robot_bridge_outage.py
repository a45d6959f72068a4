"""The robot bridge when its uplink goes away: a 30 s broker outage at 1 kHz, a Kafka outage, a SIGKILL.

Real rclpy, a real robot_bridge process, real Mosquitto and Kafka, stopped and started by the test.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from robot_outage import ROBOT, OdomSource, odom_config
from robot_outage import arrived_seqs as _seqs
from robot_outage import start_node as _start_node
from robot_outage import stop_node as _stop
from robot_outage import wait_for_seqs as _wait_for
from runs import one_run

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.codec import decode_json
from swarm_bridge.ros.spin import spin_until
from swarm_bridge.sim.taps import KafkaTap, MqttTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("SWARM_BRIDGE_OUTAGE_S", "30"))  # the figure; shorter for local runs


def _gaps(published: list[int], count: int) -> list[tuple[int, int]]:
    """Ranges [a, b) of 0..count missing from `published`."""
    seen, gaps, start = set(published), [], None
    for i in range(count + 1):
        if i < count and i not in seen:
            start = i if start is None else start
        elif start is not None:
            gaps.append((start, i))
            start = None
    return gaps


def _config(tmp_path: Path, kind: str, port: int) -> Path:
    return odom_config(tmp_path, port=port, fleet="outage", kind=kind, reconnect_s=(1, 2))


def test_mqtt_outage_of_30s_at_1khz_loses_nothing(tmp_path: Path, ros_context: Any,
                                                   ros_env: dict[str, str]) -> None:
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port())
    broker.start()
    tap = MqttTap(host="127.0.0.1", port=broker.port, patterns=[f"swarm/outage/{ROBOT}/telemetry/#"],
                  client_id="outage-tap", session_expiry_s=600)
    proc = _start_node(_config(tmp_path, "mqtt", broker.port), ros_env)
    source = OdomSource(ros_context)
    try:
        source.wait_for_bridge()
        source.run(OUTAGE_S + 6, 1000.0, at={3.0: broker.stop, 3.0 + OUTAGE_S: broker.start})
        seqs = _wait_for(tap, source.sent, timeout_s=90)
    finally:
        source.close()
        output = _stop(proc)
        tap.close()
        broker.stop()
    assert source.sent > OUTAGE_S * 900
    xs = [int(decode_json(r.payload).body["pose"]["pose"]["position"]["x"]) for r in tap.snapshot()]
    assert one_run(seqs) == list(range(source.sent)), \
        f"{len(seqs)} of {source.sent}; not bridged: {_gaps(xs, source.sent)}"
    assert f"received {source.sent}, sent {source.sent}, dropped 0" in output


def test_kafka_outage_loses_nothing(tmp_path: Path, ros_context: Any, ros_env: dict[str, str]) -> None:
    broker = Kafka(run_dir=tmp_path / "kafka", port=free_port())
    broker.start()
    ensure_kafka_topics(broker.bootstrap, ["fleet.telemetry.odometry"])
    tap = KafkaTap(bootstrap=broker.bootstrap, topics=["fleet.telemetry.odometry"])
    proc = _start_node(_config(tmp_path, "kafka", broker.port), ros_env)
    source = OdomSource(ros_context)
    try:
        source.wait_for_bridge()
        source.run(16.0, 500.0, at={2.0: broker.stop, 12.0: broker.start})
        seqs = _wait_for(tap, source.sent, timeout_s=120)
    finally:
        source.close()
        output = _stop(proc)
        tap.close()
        broker.stop()
    assert one_run(seqs) == list(range(source.sent)), f"{len(seqs)} of {source.sent}; {output[-2000:]}"
    assert {r.key for r in tap.snapshot()} == {ROBOT.encode()}


def test_sigkilled_node_keeps_its_spool_and_drains_it_after_restart(
        tmp_path: Path, ros_context: Any, ros_env: dict[str, str]) -> None:
    port = free_port()
    config = _config(tmp_path, "mqtt", port)  # no broker yet: everything spools
    proc = _start_node(config, ros_env)
    source = OdomSource(ros_context)
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=port)
    try:
        source.wait_for_bridge()
        source.run(1.0, 500.0)
        spin_until(source.executor, [], timeout_s=1.0)  # let the bridge take the last ones
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        broker.start()
        tap = MqttTap(host="127.0.0.1", port=port, patterns=[f"swarm/outage/{ROBOT}/telemetry/#"])
        proc = _start_node(config, ros_env)
        before_restart = _wait_for(tap, source.sent, timeout_s=30)
        first_run = source.sent
        source.wait_for_bridge()
        deadline = time.monotonic() + 30  # new data for the second run, until ten of it arrived
        first = before_restart[0] >> 32 if before_restart else 0
        while sum(seq >> 32 > first for seq in _seqs(tap.snapshot())) < 10 and time.monotonic() < deadline:
            source.run(0.5, 20.0)  # the restarted bridge's subscription matches after a moment
        spin_until(source.executor, [], timeout_s=1.0)
        output = _stop(proc)
        after = _seqs(tap.snapshot())
        tap.close()
    finally:
        source.close()
        if proc.poll() is None:
            _stop(proc)
        broker.stop()
    spooled = len(before_restart)
    assert one_run(before_restart) == list(range(spooled)) and spooled >= 0.8 * first_run  # the rest: in flight to ROS
    received = int(re.search(r"received (\d+), sent", output).group(1))  # type: ignore[union-attr]
    assert received >= 10, output[-2000:]
    second = after[spooled] >> 32
    assert second > before_restart[0] >> 32  # the restart's run: seq jumps, never repeats
    assert after[spooled:] == [second << 32 | i for i in range(received)]
