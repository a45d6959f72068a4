"""Benchmark: the edge gateway (MQTT -> Kafka) against a bare paho subscriber and a bare producer, one run.

Private Mosquitto and Kafka. Records: 744-byte Avro single-object Odometry records (a ~700-byte Avro body),
as simulated robots send them. Each receiver first subscribes (persistent session) and goes away; the
records are then published (QoS 1) and queued by the broker; the receiver comes back and drains them, so
the figure is the receiver's own rate, not the publishers'. Rates are counted from the first to the last
record received (bare subscriber) or arrived in Kafka (gateway, every record checked: zero loss, no
duplicate). Figures:
  bare_paho_msgs_per_s          a paho subscriber process (loop_forever, QoS 1), one record per message
  bare_mqtt5_msgs_per_s         the same on the project's own client (transport/mqtt_client.py, auto_ack)
  bare_producer_per_s           confluent-kafka producer (acks=all, idempotent, lz4) + flush
  gateway_1_msgs_per_s          one gateway process, one record per message
  gateway_2_msgs_per_s          two gateway processes, one shared subscription
  gateway_1_batch_records_per_s one gateway process, record batches of 10 (a bridge under load)
  split_{1,2,4}_msgs_per_s      1, 2 and 4 gateway processes splitting the robots (`split.groups`: plain
                                per-robot subscriptions, no shared subscription); aggregate, every record
                                checked (zero loss, no duplicate)
and the ratios gateway_1 / bare_paho, gateway_1 / bare_mqtt5 and gateway_2 / gateway_1, split_N / bare_paho and
split_N / split_1 (scaling), load_queued_per_s (how fast
the publishers queued the records; no receiver ran meanwhile) and whether issue #15's goals are met
(goal_25k_per_process_met: >= 25,000 msgs/s; goal_2x_bare_paho_met: >= 2.0x bare paho). Last line: one JSON object.

  python bench/gateway.py [--quick] [--count N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.brokers.process import ServiceProcess
from swarm_bridge.gateway.heads import avro_head
from swarm_bridge.signals import terminate_as_interrupt
from swarm_bridge.sim import DEFAULT_MIX, Publish, SimRobot
from swarm_bridge.transport import ensure_kafka_topics

FLEET = "bench"
ODOM = DEFAULT_MIX[0]
TOPIC = ODOM.kafka_topic
PUBLISHERS = 2
GOAL_MSGS_PER_S = 25_000  # issue #15: single-record messages per second, one gateway process
GOAL_VS_BARE_PAHO = 2.0  # issue #15: the gateway against a bare paho subscriber in the same run


SPLITS = (1, 2, 4)  # gateway processes splitting the robots by plain subscriptions


def publishes(count: int, *, robots: int, run: int, batch: int, fleet_name: str = FLEET) -> list[Publish]:
    """`count` records from `robots` robots' odometry streams, `batch` records per publish."""
    fleet = [SimRobot(f"amr_{i:03d}", fleet_name, [ODOM], run=run) for i in range(robots)]
    out = []
    for _round in range(count // (robots * batch)):
        out += [robot.batch(ODOM, batch) for robot in fleet]
    return out


def _publish_part(port: int, items: list[Publish], index: int) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{index}-{time.time_ns()}",
                         protocol=paho.MQTTv5)
    client.max_inflight_messages_set(1000)
    acked = 0

    def on_publish(*_a: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = items[0].content_type
    props.UserProperty = list(items[0].user_properties)
    for item in items:
        while client.publish(item.topic, item.payload, qos=1, properties=props).rc == paho.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
    deadline = time.monotonic() + 300
    while acked < len(items) and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()


def publish_all(port: int, items: list[Publish]) -> float:
    """Publish at QoS 1 from PUBLISHERS processes, each waiting for its PUBACKs; the seconds it took. Every
    record is then queued in the broker (its PUBACK says so) before any receiver comes back."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_publish_part, args=(port, items[i::PUBLISHERS], i)) for i in range(PUBLISHERS)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return time.perf_counter() - start


# --- bare paho subscriber ---------------------------------------------------------------------------

def bare_subscriber(port: int, count: int, client_id: str, ready_only: bool) -> None:
    """Subprocess body: subscribe with a persistent session; with ready_only, just create it and leave;
    else receive `count` messages and print first/last receive times as JSON."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    connect = Properties(PacketTypes.CONNECT)
    connect.SessionExpiryInterval = 600
    connect.ReceiveMaximum = 65535
    got = 0
    first = last = 0.0

    def on_connect(c: Any, *_a: Any) -> None:
        c.subscribe(f"swarm/{FLEET}/+/telemetry/+", qos=1)

    def on_subscribe(c: Any, *_a: Any) -> None:
        if ready_only:
            c.disconnect()

    def on_message(c: Any, _u: Any, _m: Any) -> None:
        nonlocal got, first, last
        got += 1
        last = time.perf_counter()
        if got == 1:
            first = last
        if got >= count:
            c.disconnect()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect("127.0.0.1", port, clean_start=False, properties=connect)
    client.loop_forever()
    if not ready_only:
        print(json.dumps({"received": got, "seconds": last - first}))


def bare_mqtt5_subscriber(port: int, count: int, client_id: str, ready_only: bool) -> None:
    """Subprocess body, as `bare_subscriber` but on the project's own MQTT 5 client (acks as it receives)."""
    from swarm_bridge.transport.mqtt_client import Message, MqttClient, MqttOptions

    got = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_m: Message) -> None:
        nonlocal got, first, last
        got += 1
        last = time.perf_counter()
        if got == 1:
            first = last
        if got >= count:
            done.set()

    client = MqttClient(MqttOptions(host="127.0.0.1", port=port, client_id=client_id, clean_start=False,
                                    session_expiry_s=600, receive_max=65535),
                        on_message=on_message, auto_ack=True)
    client.start()
    if ready_only:
        client.subscribe([f"swarm/{FLEET}/+/telemetry/+"])
    else:
        done.wait(600)
    client.close()
    if not ready_only:
        print(json.dumps({"received": got, "seconds": last - first}))


def bare_rate(port: int, items: list[Publish], mode: str = "--bare-subscriber") -> float:
    """A bare subscriber subprocess (`mode`: paho or the mqtt5 client) drains `items`: its msgs/s."""
    client_id = f"bench-bare-{time.time_ns()}"
    base = [sys.executable, __file__, mode, str(port), str(len(items)), client_id]
    subprocess.run([*base, "ready"], check=True, timeout=60)
    publish_all(port, items)
    out = subprocess.run([*base, "drain"], check=True, timeout=600, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["received"] / result["seconds"])


# --- bare producer ----------------------------------------------------------------------------------

def bare_producer(bootstrap: str, items: list[Publish]) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "compression.type": "lz4", "linger.ms": 5, "batch.size": 1_000_000})
    producer.produce("bench.raw", items[0].payload, b"amr_000")  # warm up: producer id, connections
    producer.flush(60)
    start = time.perf_counter()
    for item in items:
        while True:
            try:
                producer.produce("bench.raw", item.payload, b"amr_000")
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(120)
    return len(items) / (time.perf_counter() - start)


# --- gateway ----------------------------------------------------------------------------------------

class KafkaCount:
    """Counts records arriving on TOPIC from now on, checking (robot, seq) once each."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{time.time_ns()}",
                                  "enable.auto.commit": False})
        partitions = self.consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        ends = [TopicPartition(TOPIC, p, self.consumer.get_watermark_offsets(TopicPartition(TOPIC, p),
                                                                              timeout=10)[1]) for p in partitions]
        self.consumer.assign(ends)
        self.seen: set[tuple[str, int]] = set()
        self.records = 0
        self.first = self.last = 0.0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msgs = self.consumer.consume(10_000, 0.1)
            now = time.perf_counter()
            for msg in msgs:
                if msg.error() is None:
                    head = avro_head((msg.value() or b"")[5:])
                    self.seen.add((head.robot_id, head.seq))
                    self.records += 1
            if msgs:
                self.first = self.first or now
                self.last = now

    def wait(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.records < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        self._stop.set()
        self.thread.join()
        self.consumer.close()


def gateway_config(path: Path, name: str, mqtt_port: int, bootstrap: str, registry: Path, *,
                   fleet: str = FLEET, split: dict[str, list[str]] | None = None) -> Path:
    """A gateway config: in the share group `bench`, or with `split` (gateway_id -> robot ids) its own group."""
    mqtt: dict[str, Any] = {"port": mqtt_port, "share_group": None if split else "bench"}
    path.write_text(yaml.safe_dump({
        "gateway_id": name, "fleet": fleet, "registry": str(registry), "mqtt": mqtt,
        "kafka": {"bootstrap": bootstrap, "linger_ms": 5, "compression": "lz4"},
        "dedup": {"rebuild_records": 1000},
        "split": {"groups": split} if split else None,
    }))
    return path


def split_configs(run_dir: Path, processes: int, robots: int, mqtt_port: int, bootstrap: str,
                  registry: Path) -> list[Path]:
    """`processes` gateways splitting `robots` robots round robin, on a fleet of their own (so no session of an
    earlier run, bare or shared, is subscribed to these records and the broker queues one copy of each)."""
    groups = {f"bench_split{processes}_{k}": [f"amr_{i:03d}" for i in range(k, robots, processes)]
              for k in range(processes)}
    return [gateway_config(run_dir / f"{name}.yaml", name, mqtt_port, bootstrap, registry,
                           fleet=f"bench_split{processes}", split=groups) for name in groups]


def start_gateways(configs: list[Path]) -> list[ServiceProcess]:
    """A gateway process per config, logging next to it, all spawned at once (so several that split the robots
    start draining together), returned once each says it runs."""
    procs = [ServiceProcess(name=c.stem, run_dir=c.parent, cwd=Path.cwd(),
                            argv=[sys.executable, "-m", "swarm_bridge.cli", "gateway", "--config", str(c.resolve())])
             for c in configs]
    try:
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_for_line(": running", 300)
    except Exception:
        for proc in procs:
            proc.stop()
        raise
    return procs


def stop_gateway(proc: ServiceProcess) -> None:
    proc.stop(60)


def gateway_rate(configs: list[Path], mosquitto: Mosquitto, bootstrap: str, items: list[Publish],
                 records: int, queued: dict[str, float] | None = None) -> float:
    """Sessions first, then the records queued, then the gateways drain them into Kafka; `queued` gets the
    publishers' rate (records/s into the broker, before any gateway was running)."""
    for proc in start_gateways(configs):
        stop_gateway(proc)
    seconds = publish_all(mosquitto.port, items)
    if queued is not None:
        queued["queued_per_s"] = len(items) / seconds
    count = KafkaCount(bootstrap)
    procs = start_gateways(configs)
    count.wait(records, timeout_s=600)
    for proc in procs:
        stop_gateway(proc)
    if count.records != records or len(count.seen) != records:
        raise RuntimeError(f"gateway lost or duplicated records: {count.records} arrived, {len(count.seen)} "
                           f"distinct, {records} sent")
    return records / (count.last - count.first)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--count", type=int, default=0, help="records per figure (default 30k quick, 90k)")
    args = parser.parse_args()
    count = args.count or (30_000 if args.quick else 90_000)
    robots = 50
    figures: dict[str, Any] = {"records": count, "record_bytes": 0}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        run_dir = Path(tmp)
        mosquitto = Mosquitto(run_dir=run_dir / "mosquitto", port=free_port())
        kafka = Kafka(run_dir=run_dir / "kafka", port=free_port())
        mosquitto.start()
        kafka.start()
        try:
            ensure_kafka_topics(kafka.bootstrap, [TOPIC, "bench.raw"], partitions=2)
            items = publishes(count, robots=robots, run=1, batch=1)
            figures["record_bytes"] = len(items[0].payload)
            figures["bare_paho_msgs_per_s"] = bare_rate(mosquitto.port, items)
            print(f"bare paho subscriber: {figures['bare_paho_msgs_per_s']:,.0f} msgs/s", flush=True)
            figures["bare_mqtt5_msgs_per_s"] = bare_rate(mosquitto.port, items, "--bare-mqtt5-subscriber")
            print(f"bare subscriber on the mqtt5 client: {figures['bare_mqtt5_msgs_per_s']:,.0f} msgs/s", flush=True)
            figures["bare_producer_per_s"] = bare_producer(kafka.bootstrap, items)
            print(f"bare producer: {figures['bare_producer_per_s']:,.0f} records/s", flush=True)
            registry = run_dir / "registry"
            one = [gateway_config(run_dir / "gw1.yaml", "bench_gw1", mosquitto.port, kafka.bootstrap, registry)]
            two = [*one, gateway_config(run_dir / "gw2.yaml", "bench_gw2", mosquitto.port, kafka.bootstrap, registry)]
            queued: dict[str, float] = {}
            figures["gateway_1_msgs_per_s"] = gateway_rate(one, mosquitto, kafka.bootstrap, items, count, queued)
            figures["load_queued_per_s"] = queued["queued_per_s"]
            print(f"gateway, 1 process: {figures['gateway_1_msgs_per_s']:,.0f} msgs/s", flush=True)
            batches = publishes(count, robots=robots, run=2, batch=10)
            figures["gateway_1_batch_records_per_s"] = gateway_rate(one, mosquitto, kafka.bootstrap, batches, count)
            print(f"gateway, 1 process, batches of 10: {figures['gateway_1_batch_records_per_s']:,.0f} records/s",
                  flush=True)
            # last: once the second session exists the broker gives it its share of the group's messages
            items3 = publishes(count, robots=robots, run=3, batch=1)
            figures["gateway_2_msgs_per_s"] = gateway_rate(two, mosquitto, kafka.bootstrap, items3, count)
            print(f"gateway, 2 processes: {figures['gateway_2_msgs_per_s']:,.0f} msgs/s", flush=True)
            for n in SPLITS:
                configs = split_configs(run_dir, n, robots, mosquitto.port, kafka.bootstrap, registry)
                load = publishes(count, robots=robots, run=10 + n, batch=1, fleet_name=f"bench_split{n}")
                figures[f"split_{n}_msgs_per_s"] = gateway_rate(configs, mosquitto, kafka.bootstrap, load, count)
                print(f"gateway, {n} process(es) splitting {robots} robots by plain subscriptions: "
                      f"{figures[f'split_{n}_msgs_per_s']:,.0f} msgs/s (every record once)", flush=True)
            figures["split_loss_free"] = True  # gateway_rate raises on a lost or duplicated record
        finally:
            kafka.stop()
            mosquitto.stop()
    figures["gateway_1_vs_bare_paho"] = round(figures["gateway_1_msgs_per_s"] / figures["bare_paho_msgs_per_s"], 3)
    figures["gateway_1_vs_bare_mqtt5"] = round(figures["gateway_1_msgs_per_s"] / figures["bare_mqtt5_msgs_per_s"], 3)
    figures["scaling_2_vs_1"] = round(figures["gateway_2_msgs_per_s"] / figures["gateway_1_msgs_per_s"], 3)
    for n in SPLITS:
        figures[f"split_{n}_vs_bare_paho"] = round(figures[f"split_{n}_msgs_per_s"] / figures["bare_paho_msgs_per_s"],
                                                   3)
        if n > 1:
            figures[f"split_{n}_vs_split_1"] = round(figures[f"split_{n}_msgs_per_s"] / figures["split_1_msgs_per_s"],
                                                     3)
    figures["goal_25k_per_process_met"] = figures["gateway_1_msgs_per_s"] >= GOAL_MSGS_PER_S
    figures["goal_2x_bare_paho_met"] = figures["gateway_1_vs_bare_paho"] >= GOAL_VS_BARE_PAHO
    print(f"load generator: every record was published (QoS 1, each PUBACK received) and queued in the broker "
          f"before the receiver came back ({figures['load_queued_per_s']:,.0f} records/s into the broker for the "
          f"1-process run), so each rate above is the receiver's own drain rate, not the publishers'")
    print(f"gateway / bare paho: {figures['gateway_1_vs_bare_paho']:.2f}; gateway / bare mqtt5 client: "
          f"{figures['gateway_1_vs_bare_mqtt5']:.2f}; 2 processes / 1: {figures['scaling_2_vs_1']:.2f}")
    print("split over processes (aggregate, plain per-robot subscriptions): " + "; ".join(
        f"{n}: {figures[f'split_{n}_msgs_per_s']:,.0f} msgs/s ({figures.get(f'split_{n}_vs_split_1', 1.0):.2f}x 1 "
        f"process, {figures[f'split_{n}_vs_bare_paho']:.2f}x bare paho)" for n in SPLITS))
    print(f"goals (issue #15): >= {GOAL_MSGS_PER_S:,} msgs/s per gateway process: "
          f"{'met' if figures['goal_25k_per_process_met'] else 'NOT met'}; >= {GOAL_VS_BARE_PAHO:.1f}x a bare paho "
          f"subscriber in the same run: {'met' if figures['goal_2x_bare_paho_met'] else 'NOT met'}")
    print(json.dumps({k: round(v) if k.endswith("_per_s") else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-subscriber":
        bare_subscriber(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "ready")
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--bare-mqtt5-subscriber":
        bare_mqtt5_subscriber(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "ready")
        sys.exit(0)
    with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        sys.exit(main())
