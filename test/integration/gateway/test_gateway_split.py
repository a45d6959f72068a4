"""Several gateway processes split one hub's robots by plain subscriptions (`split.groups`): every record in
Kafka exactly once, each robot's records through its own gateway only, also when a gateway's persistent
session still held the every-robot filters of an earlier run; a robot in no group is named; commands reach every
robot through the gateways' one consumer group. Prints one `FIGURES {...}` line."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from gateway_harness import GatewayProcess, kafka_heads, sent_heads, wait_for, write_config
from outage_sender import STREAMS, TOPICS, Sender
from split_harness import produced, sent_by, split_configs

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.sim import SimRobot
from swarm_bridge.sim.mqtt_fleet import MqttFleet
from swarm_bridge.sim.taps import KafkaTap, MqttTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration


def test_three_gateways_split_the_fleet_each_robot_through_its_own_gateway(tmp_path: Path, mosquitto: Mosquitto,
                                                                           kafka: Kafka) -> None:
    tag = uuid.uuid4().hex[:6]
    fleet_name = f"fleet_{tag}"
    robots = [SimRobot(f"r{i}_{tag}", fleet_name, STREAMS) for i in range(9)]
    groups = {f"gw{k}_{tag}": part for k, part in enumerate((robots[:2], robots[2:5], robots[5:]))}
    commands = f"cmd_{tag}"  # down: the gateways share one consumer group, whatever the split
    common: dict[str, Any] = {"fleet": fleet_name, "mqtt_port": mosquitto.port, "bootstrap": kafka.bootstrap,
                              "registry": tmp_path / "registry", "kafka": {"command_group": f"group_{tag}"},
                              "down": [{"kafka_topic": commands,
                                        "mqtt": "{prefix}/{fleet}/{robot_id}/command/task_command"}]}
    ensure_kafka_topics(kafka.bootstrap, TOPICS)
    ensure_kafka_topics(kafka.bootstrap, [commands], partitions=3)
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=TOPICS)
    robot_side = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[f"swarm/{fleet_name}/+/command/#"])
    first = next(iter(groups))
    # an earlier run of the first gateway took every robot: its persistent session still holds `+` filters
    GatewayProcess(write_config(tmp_path / "before.yaml", gateway_id=first, **common)).stop()
    gateways = {gw: GatewayProcess(path) for gw, path in split_configs(tmp_path, groups, **common).items()}
    fleet = MqttFleet(robots, port=mosquitto.port)
    stray = MqttFleet([SimRobot(f"stray_{tag}", fleet_name, STREAMS)], port=mosquitto.port)  # in no group
    outputs: dict[str, str] = {}
    try:
        assert wait_for(lambda: all(f"robot stray_{tag} is online on this hub but in no group" in p.output
                                    for p in gateways.values()), 30)
        total = fleet.send(30, batch=3)
        assert fleet.wait(60) and fleet.unsubscribed == 0  # every robot had a gateway's subscription
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= total, 90)
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        for robot in robots:
            producer.produce(commands, json.dumps({"robot_id": robot.robot_id, "stream": "task_command", "seq": 1,
                                                   "task_id": f"t-{robot.robot_id}"}).encode(), robot.robot_id)
        producer.flush(10)
        assert wait_for(lambda: {r.topic.split("/")[2] for r in robot_side.snapshot()} >= {r.robot_id for r in robots},
                        60)
        outputs = {gw: proc.stop() for gw, proc in gateways.items()}  # before the robots say offline
    finally:
        fleet.close()
        stray.close()
        robot_side.close()
        for proc in gateways.values():
            if proc.proc.poll() is None:
                proc.kill()
        tap.close()
    heads = kafka_heads(tap.snapshot())
    took = {gw: produced(out) - len(groups[gw]) for gw, out in outputs.items()}  # less one presence per robot
    print("FIGURES " + json.dumps({"case": "3 gateways split 9 robots (plain per-robot subscriptions)", "sent": total,
                                   "arrived": len(heads), "duplicates": sum(n - 1 for n in heads.values()),
                                   "records_per_gateway": list(took.values()),
                                   "sent_per_group": [sent_by(g) for g in groups.values()]}))
    assert set(heads) == sent_heads(robots) and max(heads.values()) == 1
    # each gateway wrote exactly its own robots' records (group sizes differ, so no other mix adds up)
    assert took == {gw: sent_by(group) for gw, group in groups.items()}
    assert "takes 2 robots of 9 (split group" in outputs[first]


def test_a_robot_moved_to_another_group_mid_stream_is_written_once(tmp_path: Path, mosquitto: Mosquitto,
                                                                   kafka: Kafka) -> None:
    """The documented move: the gateway that loses the robot restarts first (it gives the robot's filters up),
    then the one that gains it. In between no gateway takes the robot: the broker refuses its records (0x10)
    and the robot holds them (`uplink.hold_unsubscribed`) until the gaining gateway subscribes."""
    tag = uuid.uuid4().hex[:6]
    fleet_name = f"fleet_{tag}"
    robots = [SimRobot(f"r{i}_{tag}", fleet_name, STREAMS) for i in range(4)]
    a, b = f"gwa_{tag}", f"gwb_{tag}"
    common: dict[str, Any] = {"fleet": fleet_name, "mqtt_port": mosquitto.port, "bootstrap": kafka.bootstrap,
                              "registry": tmp_path / "registry"}
    before = split_configs(tmp_path / "before", {a: robots[:2], b: robots[2:]}, **common)
    after = split_configs(tmp_path / "after", {a: robots[:1], b: robots[1:]}, **common)  # robots[1] moves to b
    ensure_kafka_topics(kafka.bootstrap, TOPICS)
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=TOPICS)
    gateways = {gw: GatewayProcess(path) for gw, path in before.items()}
    fleet = MqttFleet(robots, port=mosquitto.port, hold_unsubscribed=True)
    try:
        sender = Sender(fleet, rounds=100, batch=2, period_s=0.05)
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= 100, 60)
        for gw in (a, b):  # the losing gateway first
            gateways[gw].stop()
            gateways[gw] = GatewayProcess(after[gw])
        sender.join()
        total = sender.sent
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= total, 90)
        time.sleep(1.0)  # a late duplicate would show now
        outputs = {gw: proc.stop() for gw, proc in gateways.items()}
    finally:
        fleet.close()
        for proc in gateways.values():
            if proc.proc.poll() is None:
                proc.kill()
        tap.close()
    heads = kafka_heads(tap.snapshot())
    duplicates = sum(n - 1 for n in heads.values())
    print("FIGURES " + json.dumps({"case": "a robot moved between 2 split gateways mid-stream (losing one first)",
                                   "sent": total, "arrived": len(heads), "duplicates": duplicates,
                                   "publishes_held_by_robots": fleet.unsubscribed}))
    assert set(heads) == sent_heads(robots) and max(heads.values()) == 1
    assert "takes 1 robots of 4" in outputs[a] and "takes 3 robots of 4" in outputs[b]
