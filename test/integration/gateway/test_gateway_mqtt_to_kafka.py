"""MQTT -> Kafka through the gateway, real Mosquitto and Kafka: a fleet of 100, dead letters, a shared
subscription over two gateway processes, a Mosquitto restart, task status sent ahead of telemetry's batches."""

from __future__ import annotations

import base64
import os
import re
import tempfile
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from gateway_harness import (
    GatewayProcess,
    GatewayThread,
    kafka_heads,
    read_topic,
    sent_heads,
    wait_for,
    write_config,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.codec.framing import frame_batch, frame_single_object
from swarm_bridge.gateway.heads import avro_head
from swarm_bridge.sim import DEFAULT_MIX, SimRobot
from swarm_bridge.sim.mqtt_fleet import MqttFleet
from swarm_bridge.sim.robots import StreamSpec
from swarm_bridge.sim.taps import KafkaTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

TOPICS = [spec.kafka_topic for spec in DEFAULT_MIX]


def _tag() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture()
def tap(kafka: Kafka) -> Iterator[KafkaTap]:
    ensure_kafka_topics(kafka.bootstrap, [*TOPICS, "fleet.presence.status", "fleet.dlq"])
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=[*TOPICS, "fleet.presence.status"])
    yield tap
    tap.close()


def test_100_robots_times_4_streams_arrive_once_each(tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka,
                                                     tap: KafkaTap) -> None:
    tag = _tag()
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}",
                          mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                          metrics_port=0)
    gateway = GatewayThread(config)
    robots = [SimRobot(f"r{i:03d}_{tag}", f"fleet_{tag}") for i in range(100)]
    fleet = MqttFleet(robots, port=mosquitto.port)
    try:
        sent = fleet.send(3, batch=1) + fleet.send(3, batch=3)  # single records, then batches of three
        assert fleet.wait(60)
        expected = sent_heads(robots)
        assert sent == len(expected) == 100 * 4 * 6
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= sent, 60)
        fleet.close()
        assert wait_for(lambda: sum(r.topic == "fleet.presence.status" for r in tap.snapshot()) >= 200, 30)
        scraped: list[str] = []

        def produced_all() -> bool:  # a record is in Kafka a moment before the gateway serves its delivery report
            with urllib.request.urlopen(f"http://127.0.0.1:{gateway.gateway.metrics_port}/metrics",
                                        timeout=10) as page:
                scraped[:] = [page.read().decode()]
            return f"swarm_gateway_records_produced_total {float(sent + 200)}" in scraped[0]

        wait_for(produced_all, 30)
        metrics = scraped[0]
    finally:
        fleet.close()
        gateway.close()
    records = tap.snapshot()
    heads = kafka_heads(records)
    assert set(heads) == expected and max(heads.values()) == 1
    for record in records:
        if record.topic != "fleet.presence.status":
            assert record.key is not None and record.key.decode() in record.payload[5:40].decode(errors="replace")
    presence = [r for r in records if r.topic == "fleet.presence.status"]
    assert {r.key for r in presence} == {r.robot_id.encode() for r in robots}
    counts = gateway.counts
    assert (counts.produced, counts.duplicates, sum(counts.dead.values())) == (sent + 200, 0, 0)
    assert counts.acked == counts.messages  # every message acked after Kafka confirmed it
    assert f"swarm_gateway_records_produced_total {float(sent + 200)}" in metrics
    assert "swarm_gateway_backpressure 0.0" in metrics and "swarm_gateway_latency_seconds_count" in metrics


def test_cli_exits_3_when_mqtt_is_unreachable(tmp_path: Path, kafka: Kafka) -> None:
    import subprocess
    import sys

    config = write_config(tmp_path / "gw.yaml", gateway_id="gw_x", fleet="fleet_x", mqtt_port=free_port(),
                          bootstrap=kafka.bootstrap, registry=tmp_path / "registry")
    result = subprocess.run([sys.executable, "-m", "swarm_bridge.cli", "gateway", "--config", str(config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr[-2000:]
    assert "cannot connect" in result.stderr and "Fix: start the broker or fix mqtt.host/port" in result.stderr


def _raw_publish(port: int, items: list[tuple[str, bytes, str]]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{_tag()}", protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload, content_type in items:
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = content_type
        client.publish(topic, payload, qos=1, properties=props).wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def test_malformed_payloads_go_to_the_dlq_with_their_reason(tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka,
                                                            tap: KafkaTap) -> None:
    tag = _tag()
    fleet = f"fleet_{tag}"
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
                          bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                          kafka={"dlq_topic": f"dlq_{tag}"})
    robot = SimRobot(f"r_{tag}", fleet, DEFAULT_MIX[:1])
    odom = DEFAULT_MIX[0]
    topic = robot.topic(odom)
    good = robot.record(odom)
    items = [
        (topic, b"\x13\x37 not a record", "application/octet-stream"),
        (topic, b"\x00SB\x01\x00\x00\x01\x00cut", "avro/binary"),
        (topic, frame_single_object(0xBADF00D, good[10:]), "avro/binary"),
        (topic.replace(robot.robot_id, "someone_else"), good, "avro/binary"),
        (topic, frame_batch([robot.record(odom), b"{broken json"]), "avro/binary"),
    ]
    gateway = GatewayThread(config)
    try:
        _raw_publish(mosquitto.port, items)
        dead = read_topic(kafka.bootstrap, f"dlq_{tag}", count=5)
    finally:
        gateway.close()
    reasons = [dict(m.headers())["reason"].decode() for m in dead]
    assert reasons == ["unknown_framing", "malformed_batch", "unknown_schema", "envelope_mismatch", "bad_record"]
    assert dead[0].value() == items[0][1] and dead[1].value() == items[1][1]
    assert dict(dead[0].headers())["mqtt_topic"] == topic.encode()
    assert dict(dead[4].headers())["batch_index"] == b"1"
    heads = kafka_heads(tap.snapshot())
    assert set(heads) == {(robot.robot_id, "odometry", robot.seq(1))}  # the good record of the batch
    assert gateway.counts.dead == {"unknown_framing": 1, "malformed_batch": 1, "unknown_schema": 1,
                                   "envelope_mismatch": 1, "bad_record": 1}


def test_two_gateway_processes_share_the_load(tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka,
                                              tap: KafkaTap) -> None:
    tag = _tag()
    fleet_name = f"fleet_{tag}"
    configs = [write_config(tmp_path / f"gw{i}.yaml", gateway_id=f"gw{i}_{tag}", fleet=fleet_name,
                            mqtt_port=mosquitto.port, bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                            mqtt={"share_group": f"group_{tag}"}) for i in (1, 2)]
    gateways = [GatewayProcess(config) for config in configs]
    robots = [SimRobot(f"r{i:02d}_{tag}", fleet_name) for i in range(20)]
    fleet = MqttFleet(robots, port=mosquitto.port)
    try:
        sent = fleet.send(25, batch=1)
        assert fleet.wait(60)
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= sent, 60)
    finally:
        fleet.close()
        logs = [gateway.stop() for gateway in gateways]
    heads = kafka_heads(tap.snapshot())
    assert set(heads) == sent_heads(robots) and max(heads.values()) == 1
    produced = [int(re.findall(r"stopped: messages \d+, records \d+, produced (\d+)", log)[-1]) for log in logs]
    assert all(p > 0 for p in produced), produced  # both took a share
    assert sum(produced) >= sent


def _two_runs_across_a_broker_restart(tmp_path: Path, kafka: Kafka, tap: KafkaTap, broker: Mosquitto,
                                      **mqtt: object) -> None:
    """Five robots publish a run over TCP, the broker restarts, they publish a second run: the gateway (its
    `mqtt` keys over the test's) reconnects and every record of both runs is in Kafka once."""
    tag = _tag()
    broker.start()
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}", mqtt_port=broker.port,
                          bootstrap=kafka.bootstrap, registry=tmp_path / "registry", mqtt=mqtt)
    gateway = GatewayThread(config)
    first = [SimRobot(f"r{i}_{tag}", f"fleet_{tag}", DEFAULT_MIX[:2]) for i in range(5)]
    second = [SimRobot(f"r{i}_{tag}", f"fleet_{tag}", DEFAULT_MIX[:2], run=2) for i in range(5)]

    def arrived(n: int) -> Callable[[], bool]:
        return lambda: len(kafka_heads(tap.snapshot())) >= n

    try:
        sent = 0
        for robots in (first, second):
            if robots is second:
                broker.stop()
                assert wait_for(lambda: not gateway.counts.mqtt_connected, 30)
                broker.start()
            assert wait_for(lambda: gateway.counts.mqtt_connected, 30)
            fleet = MqttFleet(robots, port=broker.port)
            sent += fleet.send(20)
            assert fleet.wait(30)
            fleet.close(clean=False)
            assert wait_for(arrived(sent), 30)
    finally:
        gateway.close()
        broker.stop()
    heads = kafka_heads(tap.snapshot())
    assert set(heads) == sent_heads(first) | sent_heads(second) and max(heads.values()) == 1


def test_gateway_reconnects_after_a_mosquitto_restart(tmp_path: Path, kafka: Kafka, tap: KafkaTap) -> None:
    _two_runs_across_a_broker_restart(tmp_path, kafka, tap, Mosquitto(run_dir=tmp_path / "mosquitto",
                                                                      port=free_port()))


def test_a_gateway_beside_its_broker_takes_the_unix_socket_across_a_broker_restart(
        tmp_path: Path, kafka: Kafka, tap: KafkaTap) -> None:
    """mqtt.unix_socket: the gateway reaches Mosquitto through its Unix-domain socket (the TCP port it is given has
    no listener), the robots over TCP; across a broker restart on the same socket every record is in Kafka once."""
    sockets = Path(tempfile.mkdtemp(prefix="sb-sock-", dir="/tmp"))  # a socket path has at most 107 bytes
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port(), unix_socket=sockets / "mqtt.sock")
    _two_runs_across_a_broker_restart(tmp_path, kafka, tap, broker, unix_socket=str(sockets / "mqtt.sock"),
                                      port=free_port())


def test_a_record_kafka_refuses_becomes_a_dead_letter_and_the_stream_goes_on(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, tap: KafkaTap) -> None:
    from swarm_bridge.codec.avro import avro_schema
    from swarm_bridge.codec.envelope import Envelope
    from swarm_bridge.codec.framing import avro_fingerprint
    from swarm_bridge.codec.wire import wire_encoder
    from swarm_bridge.sim import StreamSpec

    tag = _tag()
    fleet = f"fleet_{tag}"
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
                          bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                          kafka={"dlq_topic": f"dlq_{tag}"}, max_payload=4 << 20,
                          chunks={"kafka_chunk_bytes": 4 << 20})  # not chunked for Kafka: refused by it
    robot = SimRobot(f"r_{tag}", fleet, DEFAULT_MIX[:1])
    blob = StreamSpec("blob", "telemetry", "std_msgs/msg/String")
    encoder = wire_encoder("std_msgs/msg/String", "avro", "mqtt", subject="x")
    noise = base64.b64encode(os.urandom(1_200_000)).decode()  # lz4 cannot shrink it below message.max.bytes
    body = encoder.codec.encode(Envelope(robot.robot_id, "blob", 1, 1, "std_msgs/msg/String", {"data": noise}))
    huge = frame_single_object(avro_fingerprint(avro_schema("std_msgs/msg/String")), body, max_payload=0)
    gateway = GatewayThread(config)
    try:
        _raw_publish(mosquitto.port, [(robot.topic(blob), huge, "avro/binary")])
        fleet_ = MqttFleet([robot], port=mosquitto.port)
        fleet_.send(3)
        assert fleet_.wait(30)
        fleet_.close()
        dead = read_topic(kafka.bootstrap, f"dlq_{tag}", count=1)
        assert wait_for(lambda: len(kafka_heads(tap.snapshot())) >= 3, 30)
    finally:
        gateway.close()
    headers = dict(dead[0].headers())
    assert headers["reason"] == b"kafka_refused" and headers["truncated"] == b"true"
    assert headers["kafka_topic"] == b"fleet.telemetry.blob" and len(dead[0].value()) == 512 * 1024
    assert set(kafka_heads(tap.snapshot())) == sent_heads([robot])
    assert gateway.counts.acked == gateway.counts.messages


def test_task_status_is_sent_at_once_while_telemetry_fills_its_batch(tmp_path: Path, mosquitto: Mosquitto,
                                                                     kafka: Kafka) -> None:
    """Records of `kafka.prompt_topics` go by a producer of their own: a task status is in Kafka while the
    telemetry sent before it still waits out its batch's linger; the gateway's stop flushes that too."""
    tag = _tag()
    status, odometry = f"t{tag}.event.task_status", f"t{tag}.telemetry.odometry"
    ensure_kafka_topics(kafka.bootstrap, [status, odometry])
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=[status, odometry])
    config = write_config(
        tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}", mqtt_port=mosquitto.port,
        bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
        kafka={"linger_ms": 120_000, "prompt_topics": [f"t{tag}.event.*"], "prompt_linger_ms": 0},
        up=[{"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}", "kafka_topic": f"t{tag}" + ".{channel}.{stream}",
             "where": {"channel": ["telemetry", "event"]}}])
    streams = (DEFAULT_MIX[0], StreamSpec("task_status", "event", "swarm_bridge_msgs/msg/TaskStatus"))
    robot = SimRobot(f"r_{tag}", f"fleet_{tag}", streams=streams)
    gateway = GatewayThread(config)
    fleet = MqttFleet([robot], port=mosquitto.port)
    try:
        fleet.publish(robot, robot.next(streams[0]))  # telemetry first
        for _ in range(3):
            fleet.publish(robot, robot.next(streams[1]))
        assert fleet.wait(60)
        assert wait_for(lambda: sum(r.topic == status for r in tap.snapshot()) == 3, 60), tap.snapshot()
        assert not [r for r in tap.snapshot() if r.topic == odometry]  # it waits for its batch (120 s)
    finally:
        fleet.close()
        gateway.close()  # flushes both producers
    try:
        assert wait_for(lambda: any(r.topic == odometry for r in tap.snapshot()), 30)
        heads = kafka_heads(tap.snapshot())
        assert heads == {(robot.robot_id, "task_status", robot.seq(n)): 1 for n in range(3)} | {
            (robot.robot_id, "odometry", robot.seq(0)): 1}
        in_order = [h.seq for h in (avro_head(r.payload[5:]) for r in tap.snapshot() if r.topic == status)]
        assert in_order == sorted(in_order)
    finally:
        tap.close()
