"""Raw limits measured in the same run on the same brokers: Mosquitto's own QoS 1 delivery rate (a publisher ->
subscriber pair), a bare subscriber taking the simulated fleet's traffic (both on the project's MQTT client,
`MqttClient`, as the gateway), and a bare confluent-kafka producer writing the same records."""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from swarm_bridge.fleetbench.errors import BenchError, BenchTimeout
from swarm_bridge.fleetbench.ledger import percentile
from swarm_bridge.sim.records import read_head
from swarm_bridge.transport.kafka_clients import Producer
from swarm_bridge.transport.mqtt_client import Message, MqttClient, MqttOptions

__all__ = ["bare_producer", "bare_producer_latency", "bare_subscriber_start", "mosquitto_pair"]


def _subscriber_main(port: int, topic: str, run: int, count: int, conn: Connection) -> None:
    """Subscribe (QoS 1, each message acked once counted); count records (and their latency from the send
    stamp) until told to stop, or until `count` arrived when count > 0."""
    got = 0
    first = last = 0.0
    lat_us: list[int] = []
    enough = threading.Event()

    def on_message(message: Message) -> None:
        nonlocal got, first, last
        now = time.time_ns()
        payload = message.payload
        if run and payload[:2] == b"\xc3\x01":
            try:
                head = read_head(payload[10:])
            except Exception:
                return
            if head.seq >> 32 != run:
                return
            lat_us.append((now - head.stamp_ns) // 1000)
        got += 1
        last = time.time()
        first = first or last
        if count and got >= count:
            enough.set()

    client = MqttClient(MqttOptions(host="127.0.0.1", port=port, client_id=f"bare-sub-{time.time_ns()}"),
                        on_message=on_message, auto_ack=True)
    client.start()
    client.subscribe([topic], qos=1)
    conn.send("ready")
    if count:
        while not enough.wait(0.05) and not conn.poll(0):
            pass
    else:
        conn.recv()
    client.close()
    conn.send({"received": got, "first": first, "last": last, "p50_ms": percentile(lat_us, 0.5) / 1000,
               "p99_ms": percentile(lat_us, 0.99) / 1000})


class BareSubscriber:
    """A bare subscriber process (its own interpreter, `MqttClient`) on `topic`; `result()` stops it."""

    def __init__(self, port: int, topic: str, *, run: int = 0, count: int = 0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_subscriber_main, args=(port, topic, run, count, child), daemon=True)
        self.proc.start()
        if not self.conn.poll(60) or self.conn.recv() != "ready":
            self.proc.kill()
            raise BenchError(f"bare subscriber on {topic!r}", f"did not subscribe within 60 s (port {port})",
                             "check that Mosquitto answers on that port and that the machine is not overloaded")

    def result(self, timeout_s: float = 120.0, *, stop: bool = True) -> dict[str, Any]:
        """Its counts: at once (`stop`), or once it received its `count` (else stopped after `timeout_s`)."""
        if not stop and not self.conn.poll(timeout_s):
            stop = True
        if stop and self.proc.is_alive() and not self.conn.poll(0):
            with contextlib.suppress(OSError):
                self.conn.send("stop")
        if not self.conn.poll(timeout_s if stop else 10.0):
            self.proc.kill()
            raise BenchTimeout("bare subscriber", f"did not report its counts within {timeout_s:g} s",
                               "give it a longer timeout_s, or look for its traceback above")
        out: dict[str, Any] = self.conn.recv()
        self.proc.join(10)
        return out


def bare_subscriber_start(port: int, fleet: str, run: int) -> BareSubscriber:
    """A bare subscriber to every robot topic of the fleet, counting the records of run `run`."""
    return BareSubscriber(port, f"swarm/{fleet}/+/+/+", run=run)


def mosquitto_pair(port: int, payload: bytes, count: int) -> float:
    """Mosquitto's QoS 1 delivery rate: one publisher as fast as its window of 1,000 lets it, one subscriber
    process; messages/s as the subscriber sees them (first to last)."""
    sub = BareSubscriber(port, "fleet_bench/pair", count=count)
    client = MqttClient(MqttOptions(host="127.0.0.1", port=port, client_id=f"pair-pub-{time.time_ns()}",
                                    max_inflight=1000))
    client.start()
    for _ in range(count):
        client.publish("fleet_bench/pair", payload, qos=1)
    result = sub.result(timeout_s=300, stop=False)
    client.close()
    return float(result["received"] / max(1e-6, result["last"] - result["first"]))


def bare_producer(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], count: int) -> float:
    """A bare confluent-kafka producer (acks=all, idempotent, lz4, linger 10 ms, as the gateway's) writing
    `count` of `records` (key, value): records/s to the last delivery confirmed."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "compression.type": "lz4", "linger.ms": 10, "partitioner": "murmur2_random"})
    producer.produce(topic, records[0][1], records[0][0])
    producer.flush(30)
    start = time.perf_counter()
    for i in range(count):
        key, value = records[i % len(records)]
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    return count / (time.perf_counter() - start)


def _timer(latencies: list[float], sent: float) -> Callable[[Any, Any], None]:
    def delivered(_err: Any, _msg: Any) -> None:
        latencies.append(time.perf_counter() - sent)

    return delivered


def bare_producer_latency(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], *, rate_per_s: float,
                          seconds: float) -> tuple[float, float]:
    """The same producer paced at `rate_per_s` (the fleet's rate): p50 and p99 (ms) of produce -> confirmed,
    the floor under the bridge's robot -> Kafka latency on this machine at this moment."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "compression.type": "lz4", "linger.ms": 10, "partitioner": "murmur2_random"})
    producer.produce(topic, records[0][1], records[0][0])
    producer.flush(30)
    latencies: list[float] = []
    count = int(rate_per_s * seconds)
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate_per_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        key, value = records[i % len(records)]
        producer.produce(topic, value, key, on_delivery=_timer(latencies, time.perf_counter()))
        producer.poll(0)
    producer.flush(120)
    return percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
