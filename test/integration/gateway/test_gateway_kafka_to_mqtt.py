"""Commands down: Kafka command topic -> each robot's MQTT command topic at QoS 1, offsets committed after
the broker's PUBACK (real Kafka and Mosquitto; Mosquitto stopped to hold a command back)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from gateway_harness import GatewayThread, read_topic, wait_for, write_config

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.codec.chunks import is_chunk
from swarm_bridge.codec.envelope import Envelope
from swarm_bridge.codec.rostypes import default_types
from swarm_bridge.codec.wire import registry_ids, wire_decoder, wire_encoder
from swarm_bridge.sim.taps import MqttTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

TASK = "swarm_bridge_msgs/msg/TaskCommand"


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (found,) = consumer.committed([TopicPartition(topic, 0)], timeout=10)
        return int(found.offset)
    finally:
        consumer.close()


def test_commands_reach_their_robots_and_offsets_commit_after_puback(tmp_path: Path, kafka: Kafka) -> None:
    tag = uuid.uuid4().hex[:6]
    fleet, topic, group = f"fleet_{tag}", f"cmd_{tag}", f"group_{tag}"
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port())
    broker.start()
    registry = tmp_path / "registry"
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=broker.port,
                          bootstrap=kafka.bootstrap, registry=registry,
                          kafka={"dlq_topic": f"dlq_{tag}", "command_group": group},
                          down=[{"kafka_topic": topic, "mqtt": "{prefix}/{fleet}/{robot_id}/command/task_command"}])
    ensure_kafka_topics(kafka.bootstrap, [topic])
    encoder = wire_encoder(TASK, "avro", "kafka", subject=f"{topic}-value", register=registry_ids(str(registry)))
    body = default_types().default_message(TASK)
    body["task_id"] = "t-1"
    avro = encoder.encode(Envelope("r1", "task_command", 1, 5, TASK, body))
    plain = json.dumps({"robot_id": "r2", "stream": "task_command", "seq": 1, "task_id": "t-2"}).encode()
    tap = MqttTap(host="127.0.0.1", port=broker.port, patterns=[f"swarm/{fleet}/+/command/#"],
                  client_id=f"tap_{tag}", session_expiry_s=600)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    for key, value in ((b"r1", avro), (b"r2", plain), (None, plain), (b"r3", b"\x07 garbage")):
        producer.produce(topic, value, key)
    producer.flush(10)
    gateway = GatewayThread(config)
    try:
        assert wait_for(lambda: len(tap.snapshot()) >= 2, 30)
        assert wait_for(lambda: _committed(kafka.bootstrap, group, topic) == 4, 30)
        dead = read_topic(kafka.bootstrap, f"dlq_{tag}", count=2)
        broker.stop()  # held back: published, never acked, so never committed
        producer.produce(topic, avro, b"r4")
        producer.flush(10)
        assert not wait_for(lambda: _committed(kafka.bootstrap, group, topic) > 4, 3)
        broker.start()
        assert wait_for(lambda: any(r.topic.endswith("/r4/command/task_command") for r in tap.snapshot()), 60)
        assert wait_for(lambda: _committed(kafka.bootstrap, group, topic) == 5, 30)
    finally:
        gateway.close()
        tap.close()
        broker.stop()
    by_topic = {r.topic: r.payload for r in tap.snapshot()}
    decoder = wire_decoder(TASK, "avro", "mqtt", subject=f"{topic}-value")
    command = decoder.decode(by_topic[f"swarm/{fleet}/r1/command/task_command"])
    assert (command.robot_id, command.seq, command.body["task_id"]) == ("r1", 1, "t-1")
    assert by_topic[f"swarm/{fleet}/r2/command/task_command"] == plain
    assert decoder.decode(by_topic[f"swarm/{fleet}/r4/command/task_command"]).robot_id == "r1"
    assert [dict(m.headers())["reason"] for m in dead] == [b"bad_command", b"bad_command"]
    assert b"not a robot id" in dict(dead[0].headers())["detail"]
    assert gateway.counts.commands == 3 and gateway.counts.commands_dead == 2


def test_a_command_larger_than_command_chunk_bytes_goes_as_chunks_and_is_put_together(
        tmp_path: Path, kafka: Kafka, mosquitto: Mosquitto) -> None:
    import base64

    from large_records import photo_rgb

    tag = uuid.uuid4().hex[:6]
    fleet, topic, group = f"fleet_{tag}", f"cmd_{tag}", f"group_{tag}"
    limit = 64 * 1024
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
                          bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                          kafka={"dlq_topic": f"dlq_{tag}", "command_group": group},
                          chunks={"command_chunk_bytes": limit},
                          down=[{"kafka_topic": topic, "mqtt": "{prefix}/{fleet}/{robot_id}/command/map_update"}])
    ensure_kafka_topics(kafka.bootstrap, [topic])
    # a map patch of real content (a photograph, base64), ~400 KB: seven chunks; then a small command, whole
    large = json.dumps({"robot_id": "r1", "stream": "map_update", "seq": 1,
                        "patch": base64.b64encode(photo_rgb(200, 200)).decode()}).encode()
    small = json.dumps({"robot_id": "r1", "stream": "map_update", "seq": 2, "patch": ""}).encode()
    pattern = f"swarm/{fleet}/r1/command/#"
    whole = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[pattern], client_id=f"whole_{tag}")
    wire = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[pattern], client_id=f"wire_{tag}", split=False)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    producer.produce(topic, large, b"r1")
    producer.produce(topic, small, b"r1")
    producer.flush(10)
    gateway = GatewayThread(config)
    try:
        assert wait_for(lambda: len(whole.snapshot()) >= 2, 60), (len(whole.snapshot()), len(wire.snapshot()))
        assert wait_for(lambda: _committed(kafka.bootstrap, group, topic) == 2, 30)  # every chunk acknowledged
    finally:
        gateway.close()
        whole.close()
        wire.close()
    assert [r.payload for r in whole.snapshot()] == [large, small]  # put together as a robot does: equal
    chunks = [r.payload for r in wire.snapshot()][:-1]
    assert len(chunks) > 1 and all(len(c) <= limit for c in chunks) and all(is_chunk(c) for c in chunks)
    assert wire.snapshot()[-1].payload == small and not whole.chunks.drops
