"""Benchmark: the robot bridge's uplinks against the raw clients, in one run, on private brokers.

Measures records/s for 700-byte payloads, acknowledged end to end:
  MQTT QoS 1  bare paho publish + wait for PUBACKs   vs  MqttLink.send + flush (MqttLink runs on MqttClient;
              a bare MqttClient publish + wait for PUBACKs is printed too, as the new client's own limit)
  Kafka       bare confluent-kafka Producer (acks=all, idempotent) + flush  vs  KafkaLink.send + flush
  encode      json.dumps of a plain dict            vs  codec.encode_json of an Envelope
and prints bridge/limit ratios. Last line: one JSON object with every figure.

  python bench/uplink.py [--quick] [--count N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from confluent_kafka import Producer
from paho.mqtt.enums import CallbackAPIVersion

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.codec import Envelope, encode_json
from swarm_bridge.signals import terminate_as_interrupt
from swarm_bridge.transport import KafkaLink, LinkBusy, MqttLink, ensure_kafka_topics
from swarm_bridge.transport.mqtt_client import MqttClient, MqttOptions

PAYLOAD = b"x" * 700


def rate(count: int, run: Callable[[], object]) -> float:
    """Records per second of `run`, which handles `count` records."""
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def send_when_ready(send: Callable[[], None], service: Callable[[], None]) -> None:
    """Send once the link has room (LinkBusy: its bounded queue is full; the outbox would spool instead)."""
    while True:
        try:
            send()
            return
        except LinkBusy:
            service()
            time.sleep(0.0002)


def raw_paho(port: int, count: int) -> float:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()

    def run() -> None:
        for _ in range(count):
            client.publish("bench/raw", PAYLOAD, qos=1)
        deadline = time.monotonic() + 120
        while acked < count and time.monotonic() < deadline:
            time.sleep(0.001)

    result = rate(count, run)
    client.disconnect()
    client.loop_stop()
    return result


def raw_client(port: int, count: int) -> float:
    """The bare MQTT 5 client MqttLink is built on: publish (blocking while the window is full), count PUBACKs."""
    client = MqttClient(MqttOptions(host="127.0.0.1", port=port, client_id="bench-client"))
    client.start()
    acked = 0

    def on_done(_ok: bool, _code: int) -> None:
        nonlocal acked
        acked += 1

    def run() -> None:
        for _ in range(count):
            client.publish("bench/client", PAYLOAD, qos=1, on_done=on_done)
        deadline = time.monotonic() + 120
        while acked < count and time.monotonic() < deadline:
            time.sleep(0.001)

    result = rate(count, run)
    client.close()
    return result


def bridge_mqtt(port: int, count: int) -> float:
    link = MqttLink(host="127.0.0.1", port=port, client_id="bench-link")
    link.connect()

    def run() -> None:
        for _ in range(count):
            send_when_ready(lambda: link.send("bench/link", b"amr", PAYLOAD, qos=1), link.service)
        link.flush(120)

    result = rate(count, run)
    link.close()
    return result


def raw_kafka(bootstrap: str, count: int) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "compression.type": "lz4"})
    producer.produce("bench.raw", b"warm-up")  # producer id and metadata before the clock starts
    producer.flush(60)

    def run() -> None:
        for _ in range(count):
            while True:
                try:
                    producer.produce("bench.raw", PAYLOAD, b"amr")
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        producer.flush(120)

    return rate(count, run)


def bridge_kafka(bootstrap: str, count: int) -> float:
    link = KafkaLink(bootstrap=bootstrap, client_id="bench-link")
    link.connect()
    link.send("bench.link", b"amr", b"warm-up")
    link.flush(60)

    def run() -> None:
        for _ in range(count):
            send_when_ready(lambda: link.send("bench.link", b"amr", PAYLOAD), link.service)
        link.flush(120)

    result = rate(count, run)
    link.close()
    return result


def encode_pair(count: int) -> tuple[float, float]:
    body = {"pose": {"position": {"x": 1.0, "y": 2.0, "z": 0.0}}, "battery_percent": 87.5,
            "capabilities": ["navigate", "inspect"], "robot_id": "amr_007"}
    raw = rate(count, lambda: [json.dumps(body).encode() for _ in range(count)])
    env = Envelope(robot_id="amr_007", stream="robot_state", seq=1, stamp_ns=1, ros_type="x/msg/Y", body=body)
    bridge = rate(count, lambda: [encode_json(env) for _ in range(count)])
    return raw, bridge


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds per figure)")
    parser.add_argument("--count", type=int, default=None, help="records per measurement")
    args = parser.parse_args()
    count = args.count or (5_000 if args.quick else 50_000)
    figures: dict[str, float | int | str] = {"count": count, "payload_bytes": len(PAYLOAD)}
    with tempfile.TemporaryDirectory(prefix="swarm-bench-") as run_dir:
        with Mosquitto(run_dir=Path(run_dir) / "mosquitto", port=free_port()) as mosquitto:
            figures["mqtt_qos1_raw_per_s"] = raw_paho(mosquitto.port, count)
            figures["mqtt_qos1_client_per_s"] = raw_client(mosquitto.port, count)
            figures["mqtt_qos1_bridge_per_s"] = bridge_mqtt(mosquitto.port, count)
        with Kafka(run_dir=Path(run_dir) / "kafka", port=free_port()) as kafka:
            ensure_kafka_topics(kafka.bootstrap, ["bench.raw", "bench.link"])
            figures["kafka_raw_per_s"] = raw_kafka(kafka.bootstrap, count)
            figures["kafka_bridge_per_s"] = bridge_kafka(kafka.bootstrap, count)
    figures["json_raw_per_s"], figures["json_bridge_per_s"] = encode_pair(count)
    client = float(figures["mqtt_qos1_client_per_s"])
    figures["mqtt_qos1_client_ratio"] = round(float(figures["mqtt_qos1_bridge_per_s"]) / client, 3)
    print(f"{'mqtt5':<10} bare MqttClient {client:>10,.0f}/s   MqttLink/MqttClient "
          f"{figures['mqtt_qos1_client_ratio']:.2f}   MqttClient/paho "
          f"{client / float(figures['mqtt_qos1_raw_per_s']):.2f}")
    for name in ("mqtt_qos1", "kafka", "json"):
        raw, bridge = float(figures[f"{name}_raw_per_s"]), float(figures[f"{name}_bridge_per_s"])
        figures[f"{name}_ratio"] = round(bridge / raw, 3)
        print(f"{name:<10} raw {raw:>10,.0f}/s   bridge {bridge:>10,.0f}/s   bridge/limit {bridge / raw:.2f}")
    print(json.dumps({k: round(float(v)) if k.endswith("_per_s") else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        sys.exit(main())
