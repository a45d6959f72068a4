"""Faults around a hub whose robots are split over gateway processes (`split.groups`, plain per-robot
subscriptions): one gateway SIGKILLed mid-stream and restarted, Mosquitto restarted while the gateways hold
unacked messages (Kafka cut by a proxy). Every record the robots sent is in Kafka exactly once; robots do not
hold anything (`hold_unsubscribed` off): the broker always had a subscriber for them. Each test prints one
`FIGURES {...}` line for docs/promises.md."""

from __future__ import annotations

import json
import os
import random
import re
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from gateway_harness import GatewayProcess, kafka_heads, sent_heads, wait_for
from outage_sender import STREAMS, TOPICS, Sender
from split_harness import by_robot, sent_by, split_configs

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.sim import SimRobot
from swarm_bridge.sim.mqtt_fleet import MqttFleet
from swarm_bridge.sim.taps import KafkaTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("SWARM_BRIDGE_FAULT_SEED", "0")) or random.randrange(1, 10**6)


def _figures(case: str, **figures: Any) -> None:
    print(f"FIGURES {json.dumps({'case': case, **figures})}")


def _records_of(tap: KafkaTap, robots: list[SimRobot]) -> int:
    names = {r.robot_id for r in robots}
    return sum(n for robot, n in by_robot(kafka_heads(tap.snapshot())).items() if robot in names)


def _grow(tap: KafkaTap, robots: list[SimRobot], by: int) -> None:
    """Wait (up to a minute; the sender may end first) until Kafka holds `by` more records of `robots`."""
    mark = _records_of(tap, robots)
    wait_for(lambda: _records_of(tap, robots) >= mark + by, 60)


def test_split_gateway_sigkilled_mid_stream_loses_nothing_and_its_robots_wait_for_it(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka) -> None:
    rng = random.Random(SEED)
    tag = uuid.uuid4().hex[:6]
    fleet_name = f"fleet_{tag}"
    robots = [SimRobot(f"r{i}_{tag}", fleet_name, STREAMS) for i in range(8)]
    kept, killed = robots[:4], robots[4:]
    configs = split_configs(tmp_path, {f"gwa_{tag}": kept, f"gwb_{tag}": killed}, fleet=fleet_name,
                            mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap, registry=tmp_path / "registry")
    ensure_kafka_topics(kafka.bootstrap, TOPICS)
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=TOPICS)
    survivor, victim = (GatewayProcess(path) for path in configs.values())
    fleet = MqttFleet(robots, port=mosquitto.port)
    kill_at = round(rng.uniform(1.0, 3.0), 2)
    try:
        sender = Sender(fleet, rounds=160, batch=4, period_s=0.05)
        time.sleep(kill_at)
        victim.kill()  # mid-stream: records in flight to Kafka, MQTT messages unacked
        # while it is dead, the other group keeps flowing and nobody takes the dead gateway's robots: their
        # records wait in its persistent session (each wait lets the tap catch up with what was written)
        _grow(tap, kept, 200)
        _grow(tap, kept, 200)
        while_dead = _records_of(tap, killed)
        kept_before = _records_of(tap, kept)
        _grow(tap, kept, 200)
        kept_grew, killed_grew = _records_of(tap, kept) - kept_before, _records_of(tap, killed) - while_dead
        victim = GatewayProcess(configs[f"gwb_{tag}"])
        sender.join()
        total = sender.sent
        assert fleet.unsubscribed == 0  # the dead gateway's session kept its robots' subscriptions
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= total, 90)
        time.sleep(1.0)  # a late duplicate would show now
        output = victim.stop()
        survivor.stop()
    finally:
        fleet.close()
        for proc in (survivor, victim):
            if proc.proc.poll() is None:
                proc.kill()
        tap.close()
    heads = kafka_heads(tap.snapshot())
    _figures("one of 2 split gateways SIGKILLed mid-stream and restarted", seed=SEED, kill_at_s=kill_at,
             sent=total, arrived=len(heads), duplicates=sum(n - 1 for n in heads.values()),
             other_group_records_while_dead=kept_grew, dead_group_records_while_dead=killed_grew,
             sent_per_group=[sent_by(kept), sent_by(killed)])
    assert set(heads) == sent_heads(robots), f"{len(set(heads))} of {total} (seed {SEED})"
    assert max(heads.values()) == 1, f"duplicates past the dedup point (seed {SEED})"
    assert kept_grew > 0 and killed_grew == 0, "another gateway took the dead gateway's robots"
    assert "dedup rebuilt from" in output


def _held(gateway: GatewayProcess) -> int:
    """MQTT messages the gateway received and has not acked (from its /metrics)."""
    port = re.findall(r"metrics on http://127.0.0.1:(\d+)/metrics", gateway.output)[-1]
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    value = {m[0]: float(m[1]) for m in re.findall(r"^swarm_gateway_(\w+?)(?:_total)? ([0-9.e+]+)$", text, re.M)}
    return int(value["mqtt_messages"] - value["mqtt_acked"])


def test_mosquitto_restart_under_a_split_loses_nothing_without_robots_holding(
        tmp_path: Path, proxied_kafka: tuple[Kafka, FaultProxy]) -> None:
    """Kafka stalls (a proxy refuses it), both gateways hold messages unacked, Mosquitto is restarted (persistent
    sessions on disk), the robots publish right away, Kafka comes back: every record reaches Kafka once. Plain
    subscriptions come back with the sessions, so no publish is answered 0x10 (no matching subscribers)."""
    tag = uuid.uuid4().hex[:6]
    fleet_name = f"fleet_{tag}"
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port())
    broker.start()
    _kafka, proxy = proxied_kafka  # every Kafka connection goes through the proxy, not only the bootstrap
    bootstrap = f"127.0.0.1:{proxy.port}"
    ensure_kafka_topics(bootstrap, TOPICS)
    tap = KafkaTap(bootstrap=bootstrap, topics=TOPICS)
    robots = [SimRobot(f"r{i}_{tag}", fleet_name, STREAMS) for i in range(4)]
    configs = split_configs(tmp_path, {f"gwa_{tag}": robots[:2], f"gwb_{tag}": robots[2:]}, fleet=fleet_name,
                            mqtt_port=broker.port, bootstrap=bootstrap, registry=tmp_path / "registry",
                            kafka={"max_inflight_records": 200}, metrics_port=0)
    gateways = [GatewayProcess(path) for path in configs.values()]
    fleet = MqttFleet(robots, port=broker.port)
    held: list[int] = []
    unsubscribed = 0
    try:
        assert fleet.send(10, batch=2) and fleet.wait(30)
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= sent_by(robots), 60)
        proxy.refuse(True)
        proxy.drop()  # Kafka unreachable for the gateways (the broker itself keeps running)
        fleet.send(20, batch=2)
        assert fleet.wait(30)
        assert wait_for(lambda: all(_held(g) > 0 for g in gateways), 30)
        held = [_held(g) for g in gateways]
        unsubscribed += fleet.unsubscribed
        fleet.close()
        broker.stop()  # with the gateways' messages unacked
        broker.start()
        fleet = MqttFleet(robots, port=broker.port)  # at once: the gateways may not be back yet
        fleet.send(10, batch=2)
        assert fleet.wait(60)
        unsubscribed += fleet.unsubscribed
        proxy.refuse(False)
        total = sent_by(robots)
        wait_for(lambda: len(kafka_heads(tap.snapshot())) >= total, 60)
        time.sleep(1.0)
        for gateway in gateways:
            gateway.stop()
    finally:
        proxy.refuse(False)
        fleet.close()
        for gateway in gateways:
            if gateway.proc.poll() is None:
                gateway.kill()
        tap.close()
        broker.stop()
    heads = kafka_heads(tap.snapshot())
    _figures("Mosquitto restarted while 2 split gateways held unacked messages (Kafka cut by a proxy)", sent=total,
             arrived=len(heads), duplicates=sum(n - 1 for n in heads.values()), held_unacked_per_gateway=held,
             publishes_without_subscriber=unsubscribed, dropped=0)
    assert unsubscribed == 0  # no robot needed uplink.hold_unsubscribed
    assert set(heads) == sent_heads(robots) and max(heads.values()) == 1
