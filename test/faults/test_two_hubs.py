"""Two hubs, one Kafka: a robot that moves from hub A to hub B has every record in Kafka once and in seq order.

Each hub is a real Mosquitto with its own `swarm-bridge gateway` process (its own gateway_id), both writing into
one real Kafka. The robot is a real robot_bridge process fed by an Odometry publisher on ROS; it moves the way a
user moves it (docs/robot-bridge.md, "A robot moving between hubs"): stopped, and started again with its uplink
pointing at the other hub and the same spool. Hub A's link is lost mid-stream (a proxy first holds the broker's
replies, as a link that works one way, then drops it and refuses the robot), so records hub A's gateway already
wrote to Kafka are still in the robot's spool unacknowledged and go to hub B again; or the robot leaves hub A in
order (stopped cleanly, everything acknowledged) and is started on hub A again; or the robot's one address leads
to hub B and back (it only reconnects, one run).

The dedup point is Kafka: every (robot, stream, seq) the robot bridge received from ROS is there exactly once,
in seq order. Each test prints one `FIGURES {...}` line for docs/promises.md.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from gateway_harness import GatewayProcess, wait_for, write_config
from robot_outage import NODE, OdomSource, odom_config
from robot_outage import stop_node as _stop
from runs import runs_in_order

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.codec import decode_json
from swarm_bridge.ros.spin import spin_until
from swarm_bridge.sim.taps import KafkaTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

TOPIC = "fleet.telemetry.odometry"
RATE_HZ = 200.0
# the gateways carry telemetry only, so what each one produced is the robot's odometry (presence is not counted)
TELEMETRY = {"mqtt": "{prefix}/{fleet}/{robot_id}/telemetry/{stream}", "kafka_topic": "fleet.telemetry.{stream}"}


class Hub:
    """One hub: a Mosquitto (reached through a fault proxy) and its own gateway process."""

    def __init__(self, name: str, tmp_path: Path, kafka: Kafka, tag: str) -> None:
        self.name = name
        self.broker = Mosquitto(run_dir=tmp_path / f"mosquitto_{name}", port=free_port())
        self.broker.start()
        self.proxy = FaultProxy(self.broker.port)
        self.config = write_config(tmp_path / f"gw_{name}.yaml", gateway_id=f"gw_{name}_{tag}", fleet=f"hubs_{tag}",
                                   mqtt_port=self.broker.port, bootstrap=kafka.bootstrap,
                                   registry=tmp_path / "registry", up=[TELEMETRY])
        self.gateway: GatewayProcess | None = None
        self.log = ""

    def start_gateway(self) -> None:
        self.gateway = GatewayProcess(self.config, timeout_s=90)

    def counts(self) -> dict[str, int]:
        """The gateway's final counts (produced, duplicates, ...) from its stop line."""
        found = re.search(r"stopped: messages (\d+), records (\d+), produced (\d+), duplicates (\d+)", self.log)
        assert found, self.log[-2000:]
        return dict(zip(("messages", "records", "produced", "duplicates"), map(int, found.groups()), strict=True))

    def close(self) -> None:
        try:
            if self.gateway is not None:
                self.log = self.gateway.stop()
        finally:
            if self.gateway is not None and self.gateway.proc.poll() is None:
                self.gateway.kill()
            self.proxy.close()
            self.broker.stop()


def _robot_config(tmp_path: Path, robot: str, fleet: str, port: int) -> Path:
    return odom_config(tmp_path, port=port, robot_id=robot, fleet=fleet)


class Robot:
    """The robot bridge process on one hub at a time: `join(hub)` starts it pointing at that hub's proxy (the same
    config file and spool, `--set uplink.port=...`), `leave()` stops it (SIGTERM) and keeps what it logged."""

    def __init__(self, config: Path, env: dict[str, str], source: OdomSource) -> None:
        self.config, self.env, self.source = config, env, source
        self.proc: subprocess.Popen[str] | None = None
        self.received: list[int] = []  # per run: records the bridge received from ROS (its stop line)
        self.outputs: list[str] = []

    def join(self, hub: Hub) -> None:
        self.proc = subprocess.Popen([*NODE, "--config", str(self.config), "--set", f"uplink.port={hub.proxy.port}"],
                                     env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.source.wait_for_bridge()

    def leave(self) -> None:
        spin_until(self.source.executor, [], timeout_s=1.0)  # the bridge takes the last ones published
        assert self.proc is not None
        output = _stop(self.proc)
        self.outputs.append(output)
        found = re.search(r"received (\d+), sent \d+, dropped (\d+)", output)
        assert found and found.group(2) == "0", output[-3000:]
        self.received.append(int(found.group(1)))
        # until the publisher sees the bridge's subscription gone: the next run's wait means the new one
        assert spin_until(self.source.executor, [self.source.node], timeout_s=30,
                          done=lambda: self.source.publisher.get_subscription_count() == 0)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=30)


def _records(tap: KafkaTap, robot: str) -> list[Any]:
    """The robot's odometry records in Kafka, in partition order (one key, one partition)."""
    return [decode_json(r.payload) for r in tap.snapshot() if r.topic == TOPIC and r.key == robot.encode()]


def _check(records: list[Any], robot: Robot, source: OdomSource) -> dict[str, Any]:
    """Every record each run received from ROS is in Kafka once, in seq order, and carries what ROS published;
    returns the figures."""
    seqs = [r.seq for r in records]
    counts = collections.Counter(seqs)
    duplicated = {seq: n for seq, n in counts.items() if n > 1}
    first = list(dict.fromkeys(seqs))
    runs = runs_in_order(first)
    assert len(runs) == len(robot.received) and runs == sorted(runs), f"runs {runs}, bridge starts {robot.received}"
    expected = [run << 32 | n for run, count in zip(runs, robot.received, strict=True) for n in range(count)]
    assert duplicated == {}, f"{len(duplicated)} records twice in Kafka: {sorted(duplicated)[:5]} (run << 32 | n)"
    assert sorted(first) == expected, f"{len(first)} of {len(expected)} records; missing " \
                                      f"{sorted(set(expected) - set(first))[:5]}"
    assert first == expected, "not in seq order"
    xs = [int(r.body["pose"]["pose"]["position"]["x"]) for r in records]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), "not in publication order"
    assert xs[-1] == source.sent - 1  # the last one published is the last one in Kafka
    assert {r.body["child_frame_id"] for r in records} == {source.tag}
    return {"published": source.sent, "received_per_run": robot.received, "in_kafka": len(first),
            "kafka_duplicates": sum(n - 1 for n in counts.values())}


def _hubs(tmp_path: Path, kafka: Kafka, tag: str) -> tuple[Hub, Hub]:
    """Hubs A and B, their gateways started side by side."""
    a, b = Hub("a", tmp_path, kafka, tag), Hub("b", tmp_path, kafka, tag)
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(Hub.start_gateway, (a, b)))
    except BaseException:
        _close(a, b)
        raise
    return a, b


def _close(*hubs: Hub) -> None:
    """Stop the hubs side by side (each gateway's clean exit is checked by its `close`)."""
    with ThreadPoolExecutor(len(hubs)) as pool:
        list(pool.map(Hub.close, hubs))


def _figures(case: str, **figures: Any) -> None:
    print(f"FIGURES {json.dumps({'case': case, **figures})}")


def test_robot_moving_to_hub_b_after_losing_hub_a_and_back_in_order_has_every_record_in_kafka_once_in_order(
        tmp_path: Path, kafka: Kafka, ros_context: Any, ros_env: dict[str, str]) -> None:
    """Hub A's link is lost mid-stream and the bridge restarted on hub B with its spool; then the robot leaves
    hub B in order (stopped cleanly, everything acknowledged) and is started on hub A again."""
    tag = uuid.uuid4().hex[:6]
    robot_id = f"amr_{tag}"
    ensure_kafka_topics(kafka.bootstrap, [TOPIC])
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=[TOPIC])
    source = OdomSource(ros_context)
    a, b = _hubs(tmp_path, kafka, tag)
    robot = Robot(_robot_config(tmp_path, robot_id, f"hubs_{tag}", a.proxy.port), ros_env, source)

    def link_one_way() -> None:  # driving out of hub A's reach: records still arrive, acknowledgements do not ...
        a.proxy.hold_replies(True)

    def link_lost() -> None:  # ... then nothing: what hub A took and wrote was never acknowledged to the robot
        a.proxy.refuse(True)
        a.proxy.drop()
        a.proxy.hold_replies(False)

    try:
        robot.join(a)
        source.run(4.0, RATE_HZ, at={1.5: link_one_way, 2.5: link_lost})  # spooling from 2.5 s on
        robot.leave()
        robot.join(b)  # the same spool, hub B's address
        source.run(1.5, RATE_HZ)
        robot.leave()
        a.proxy.refuse(False)  # back in hub A's reach
        robot.join(a)
        source.run(1.5, RATE_HZ)
        robot.leave()
        total = sum(robot.received)
        assert wait_for(lambda: len({r.seq for r in _records(tap, robot_id)}) >= total, 60)
        time.sleep(1.5)  # a late duplicate would show now
    finally:
        robot.kill()
        source.close()
        _close(a, b)
        tap.close()
    figures = _check(_records(tap, robot_id), robot, source)
    via_a, via_b = a.counts(), b.counts()
    waiting = [re.search(r"(\d+) records not acknowledged at shutdown", output) for output in robot.outputs]
    spooled = [int(found.group(1)) if found else 0 for found in waiting]
    _figures("robot moved hub A -> hub B after losing A's link mid-stream (one way for 1 s, then dropped), then "
             "stopped cleanly on B and started on A", **figures, spooled_at_each_stop=spooled,
             produced_by_gateway_a=via_a["produced"], produced_by_gateway_b=via_b["produced"],
             duplicates_removed_a=via_a["duplicates"], duplicates_removed_b=via_b["duplicates"])
    assert spooled[0] > 0 and spooled[1:] == [0, 0], robot.outputs[0][-3000:]  # the first move carried a spool
    assert via_b["produced"] > robot.received[1]  # hub B wrote the spooled records of run 0 too ...
    assert via_b["duplicates"] > 0  # ... and not those hub A had written: Kafka holds each once (above)
    assert via_a["produced"] >= robot.received[2]  # the orderly move back: run 2 all through hub A


def test_robot_whose_address_leads_to_hub_b_and_back_keeps_one_run_and_every_record_once_in_order(
        tmp_path: Path, kafka: Kafka, ros_context: Any, ros_env: dict[str, str]) -> None:
    """The robot's one address (a site's DNS name or floating address) leads to hub A, then to hub B, then to A
    again: the bridge only reconnects (one run, one spool), each time with a second of acknowledgements lost."""
    tag = uuid.uuid4().hex[:6]
    robot_id = f"amr_{tag}"
    ensure_kafka_topics(kafka.bootstrap, [TOPIC])
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=[TOPIC])
    source = OdomSource(ros_context)
    a, b = _hubs(tmp_path, kafka, tag)
    address = FaultProxy(a.broker.port)  # the robot's address of "the hub"
    robot = Robot(_robot_config(tmp_path, robot_id, f"hubs_{tag}", address.port), ros_env, source)

    def to(hub: Hub) -> Any:
        def roam() -> None:  # the address leads elsewhere: the open connection breaks, the next one is there
            address.target_port = hub.broker.port
            address.drop()
            address.hold_replies(False)
        return roam

    try:
        robot.proc = subprocess.Popen([*NODE, "--config", str(robot.config)], env=ros_env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        source.wait_for_bridge()
        source.run(6.0, RATE_HZ, at={1.0: lambda: address.hold_replies(True), 2.0: to(b),
                                     3.0: lambda: address.hold_replies(True), 4.0: to(a)})
        robot.leave()
        total = robot.received[0]
        assert wait_for(lambda: len({r.seq for r in _records(tap, robot_id)}) >= total, 60)
        time.sleep(1.5)
    finally:
        robot.kill()
        source.close()
        address.close()
        _close(a, b)
        tap.close()
    figures = _check(_records(tap, robot_id), robot, source)
    via_a, via_b = a.counts(), b.counts()
    _figures("robot's address led to hub A, then hub B, then A again (one run; 1 s of acks lost each time)",
             **figures, produced_by_gateway_a=via_a["produced"], produced_by_gateway_b=via_b["produced"],
             duplicates_removed_a=via_a["duplicates"], duplicates_removed_b=via_b["duplicates"],
             connections=address.counts["accepted"])
    assert via_b["produced"] > 0 and via_a["produced"] > 0 and address.counts["accepted"] >= 3
    assert via_b["duplicates"] > 0 and via_a["duplicates"] > 0  # each hub was sent what the other had written
