"""A PUBACK lost on its way back to the robot (the fault proxy removes it from the broker's replies) on a live
connection: the robot bridge resumes its session after `uplink.ack_timeout_s` and resends that publish (DUP), so
every record reaches Kafka, each once past the gateway's dedup, instead of the outbox waiting for the next
reconnect; the client side alone, against real Mosquitto, too."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from fault_proxy import FaultProxy
from gateway_harness import GatewayThread, wait_for, write_config
from robot_outage import OdomSource, odom_config
from robot_outage import start_node as _start_node
from robot_outage import stop_node as _stop
from runs import one_run

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.codec import decode_json
from swarm_bridge.fleetbench.hub import scrape
from swarm_bridge.sim.taps import KafkaTap
from swarm_bridge.transport import ensure_kafka_topics
from swarm_bridge.transport.mqtt_client import MqttClient, MqttOptions

pytestmark = pytest.mark.integration

PUBACK = 4  # MQTT packet type


class _LoseOnePuback:
    """Removes the `nth` PUBACK the broker sends (1-based), once; lets every other packet pass."""

    def __init__(self, nth: int) -> None:
        self.nth, self.seen, self.removed = nth, 0, 0

    def __call__(self, packet: bytes) -> bytes | None:
        if packet[0] >> 4 != PUBACK:
            return packet
        self.seen += 1
        if self.seen == self.nth:
            self.removed += 1
            return None
        return packet


def test_a_puback_lost_on_a_live_connection_is_resent_after_the_ack_timeout(mosquitto: Mosquitto) -> None:
    proxy = FaultProxy(mosquitto.port)
    lose = _LoseOnePuback(2)
    proxy.rewrite_mqtt_replies(lose)
    results: list[bool] = []
    lock = threading.Lock()

    def done(ok: bool, _code: int) -> None:
        with lock:
            results.append(ok)

    client = MqttClient(MqttOptions(host="127.0.0.1", port=proxy.port, client_id=f"lost-{uuid.uuid4().hex[:8]}",
                                    clean_start=False, session_expiry_s=300, reconnect_min_s=0.2,
                                    reconnect_max_s=1.0, ack_timeout_s=1.0))
    client.start()
    try:
        for n in range(5):
            client.publish("swarm/test/lost_puback", f"{n}".encode(), qos=1, on_done=done, timeout_s=10)
        assert wait_for(lambda: len(results) == 5, 60), (results, client.stats)
    finally:
        client.close()
        proxy.close()
    assert lose.removed == 1 and results == [True] * 5
    assert client.stats.ack_timeouts == 1 and client.stats.resent >= 1 and client.stats.connects == 2


def test_robot_bridge_with_a_lost_puback_delivers_every_record_once_without_waiting_for_a_reconnect(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, ros_context: Any, ros_env: dict[str, str]) -> None:
    tag = uuid.uuid4().hex[:6]
    robot, fleet, topic = f"amr_{tag}", f"lostack_{tag}", f"fleet.telemetry.lostack_{tag}"
    ensure_kafka_topics(kafka.bootstrap, [topic])
    gateway = GatewayThread(write_config(
        tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=fleet, mqtt_port=mosquitto.port,
        bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
        up=[{"mqtt": "{prefix}/{fleet}/{robot_id}/telemetry/{stream}", "kafka_topic": topic}]))
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=[topic])
    proxy = FaultProxy(mosquitto.port)
    lose = _LoseOnePuback(4)  # the first is the presence's; then the odometry's, alone or batched
    proxy.rewrite_mqtt_replies(lose)
    # 30 records at 10 Hz: fewer than a batch (batch_max_records 64), so before the fix every record after the
    # unacknowledged one waited in memory for its PUBACK, i.e. for the next reconnect
    config = odom_config(tmp_path, port=proxy.port, robot_id=robot, fleet=fleet, uplink={"ack_timeout_s": 2.0})
    metrics_port = free_port()
    config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "metrics_port": metrics_port}))
    proc = _start_node(config, ros_env)
    source = OdomSource(ros_context)
    try:
        source.wait_for_bridge()
        source.run(3.0, 10.0)
        assert wait_for(lambda: len(_seqs(tap)) >= source.sent, 90), (len(_seqs(tap)), source.sent)
        assert wait_for(lambda: gateway.counts.duplicates >= 1, 30), gateway.counts  # the resend reached it
        ack_timeouts = scrape(metrics_port).get("swarm_bridge_uplink_events_total{event=ack_timeouts}")
        output = _stop(proc)
    finally:
        source.close()
        if proc.poll() is None:
            proc.kill()
        gateway.close()
        tap.close()
        proxy.close()
    seqs = _seqs(tap)
    assert lose.removed == 1
    assert sorted(one_run(seqs)) == list(range(source.sent)) and len(seqs) == source.sent  # all, each once in Kafka
    assert output.count("no PUBACK for packet") == 1, output[-3000:]  # counted and logged once
    assert ack_timeouts == 1  # and served as a metric
    assert f"received {source.sent}, sent {source.sent}, dropped 0" in output


def _seqs(tap: KafkaTap) -> list[int]:
    return [decode_json(r.payload).seq for r in tap.snapshot()]
