"""Faults around the gateway (MQTT -> Kafka): SIGKILLed at seeded random points and restarted, Mosquitto
restarted while the gateway holds unacked messages (Kafka down at the same time), the Kafka link cut by a proxy.

The dedup point is Kafka: every (robot, stream, seq) the simulated robots sent is there exactly once. Each test
prints one `FIGURES {...}` line for docs/promises.md.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from gateway_harness import GatewayProcess, GatewayThread, kafka_heads, sent_heads, wait_for, write_config
from outage_sender import STREAMS, TOPICS, Sender

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.sim import SimRobot
from swarm_bridge.sim.mqtt_fleet import MqttFleet
from swarm_bridge.sim.taps import KafkaTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("SWARM_BRIDGE_FAULT_SEED", "0")) or random.randrange(1, 10**6)


def _figures(case: str, **figures: Any) -> None:
    print(f"FIGURES {json.dumps({'case': case, **figures})}")


def test_gateway_sigkilled_at_random_points_writes_everything_once(tmp_path: Path, mosquitto: Mosquitto,
                                                                   kafka: Kafka) -> None:
    rng = random.Random(SEED)
    tag = uuid.uuid4().hex[:6]
    ensure_kafka_topics(kafka.bootstrap, TOPICS)
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=TOPICS)
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}",
                          mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap, registry=tmp_path / "registry")
    robots = [SimRobot(f"r{i}_{tag}", f"fleet_{tag}", STREAMS) for i in range(8)]
    gateway = GatewayProcess(config)
    fleet = MqttFleet(robots, port=mosquitto.port)
    kills = sorted(rng.uniform(0.5, 6.0) for _ in range(3))
    at_kill: list[int] = []
    try:
        sender = Sender(fleet, rounds=160, batch=4, period_s=0.05)
        start = time.monotonic()
        for when in kills:
            time.sleep(max(0.0, start + when - time.monotonic()))
            gateway.kill()  # mid-stream: records in flight to Kafka, MQTT messages unacked
            at_kill.append(len(tap.snapshot()))
            gateway = GatewayProcess(config)
        sender.join()
        total = sender.sent
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= total, 90)
        time.sleep(1.0)  # a late duplicate would show now
        output = gateway.stop()
    finally:
        fleet.close()
        if gateway.proc.poll() is None:
            gateway.kill()
        tap.close()
    heads = kafka_heads(tap.snapshot())
    dead = [r for r in tap.snapshot() if r.payload[:1] != b"\x00"]
    _figures("gateway SIGKILLed 3 times at seeded random points", seed=SEED, kills_s=[round(k, 2) for k in kills],
             sent=total, arrived=len(heads), duplicates=sum(n - 1 for n in heads.values()), dropped=len(dead),
             in_kafka_at_each_kill=at_kill)
    assert set(heads) == sent_heads(robots), f"{len(set(heads))} of {total} (seed {SEED})"
    assert max(heads.values()) == 1, f"duplicates past the dedup point (seed {SEED})"
    assert dead == [] and "dedup rebuilt from" in output


@pytest.mark.parametrize("share_group", [None, "swarm_gateway"])
def test_mosquitto_restart_while_the_gateway_holds_unacked_messages_loses_nothing(
        tmp_path: Path, proxied_kafka: tuple[Kafka, FaultProxy], share_group: str | None) -> None:
    """Kafka stalls (a proxy refuses it), the gateway holds messages unacked, Mosquitto is restarted (persistent
    sessions on disk), Kafka comes back: every record reaches Kafka once.

    Mosquitto 2.0 does not restore a persistent session's shared subscription after its own restart, so until
    the gateway subscribes again the broker has no subscriber for the robots' records (PUBACK reason 0x10); the
    robots hold those (`uplink.hold_unsubscribed`) and send them again."""
    tag = uuid.uuid4().hex[:6]
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port())
    broker.start()
    _kafka, proxy = proxied_kafka  # every Kafka connection goes through the proxy, not only the bootstrap
    bootstrap = f"127.0.0.1:{proxy.port}"
    ensure_kafka_topics(bootstrap, TOPICS)
    tap = KafkaTap(bootstrap=bootstrap, topics=TOPICS)
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}",
                          mqtt_port=broker.port, bootstrap=bootstrap, registry=tmp_path / "registry",
                          kafka={"max_inflight_records": 200}, mqtt={"share_group": share_group})
    robots = [SimRobot(f"r{i}_{tag}", f"fleet_{tag}", STREAMS) for i in range(4)]
    gateway = GatewayThread(config)
    fleet = MqttFleet(robots, port=broker.port, hold_unsubscribed=True)
    held = 0
    try:
        assert fleet.send(10, batch=2) and fleet.wait(30)
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= fleet_total(robots), 60)
        proxy.refuse(True)
        proxy.drop()  # Kafka unreachable for the gateway (the broker itself keeps running)
        fleet.send(20, batch=2)
        assert fleet.wait(30)
        assert wait_for(lambda: gateway.counts.messages - gateway.counts.acked > 0, 30)
        held = gateway.counts.messages - gateway.counts.acked
        fleet.close()
        broker.stop()  # with the gateway's messages unacked
        broker.start()
        fleet = MqttFleet(robots, port=broker.port, hold_unsubscribed=True)
        fleet.send(10, batch=2)
        assert fleet.wait(60)
        proxy.refuse(False)
        total = fleet_total(robots)
        wait_for(lambda: len(kafka_heads(tap.snapshot())) >= total, 45)
        time.sleep(1.0)
        unsubscribed = fleet.unsubscribed
    finally:
        proxy.refuse(False)
        fleet.close()
        gateway.close()
        tap.close()
        broker.stop()
    heads = kafka_heads(tap.snapshot())
    _figures("Mosquitto restarted while the gateway held unacked messages (Kafka cut by a proxy)", sent=total,
             share_group=share_group, arrived=len(heads), duplicates=sum(n - 1 for n in heads.values()),
             held_unacked=held, unsubscribed_held_by_robots=unsubscribed, dropped=0)
    assert held > 0
    assert set(heads) == sent_heads(robots) and max(heads.values()) == 1


def fleet_total(robots: list[SimRobot]) -> int:
    return sum(sum(r.sent.values()) for r in robots)
