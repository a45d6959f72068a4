"""Faults on the gateway -> Kafka link itself: a proxy between them cuts, delays and black-holes it mid-stream.

Kafka advertises the proxy's port, so every connection a client makes after bootstrap goes through the proxy
(a bootstrap-only proxy would be bypassed). After each fault every (robot, stream, seq) the simulated robots sent
is in Kafka exactly once and in seq order per (robot, stream) (a cut while records are given up and others held
may add copies of records already written, never one out of order), and the gateway's /metrics page showed what
it went through (Kafka down, backpressure, records held, records produced again) while the fault lasted. Each
test prints one `FIGURES {...}` line.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fault_proxy import FaultProxy
from gateway_harness import GatewayThread, kafka_heads, sent_heads, wait_for, write_config
from outage_sender import STREAMS, TOPICS, Sender
from prometheus_client.parser import text_string_to_metric_families

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.gateway.heads import avro_head
from swarm_bridge.sim import SimRobot
from swarm_bridge.sim.mqtt_fleet import MqttFleet
from swarm_bridge.sim.taps import KafkaTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

FAULT_S = 2.0  # how long a fault lasts once the gateway shows it (the gateway shows it within seconds)


@pytest.fixture()
def proxy(proxied_kafka: tuple[Kafka, FaultProxy]) -> Iterator[FaultProxy]:
    """The module's proxy, every fault lifted after the test."""
    proxy = proxied_kafka[1]
    ensure_kafka_topics(f"127.0.0.1:{proxy.port}", TOPICS)
    yield proxy
    proxy.refuse(False)
    proxy.delay(0)
    proxy.blackhole(False)


class Run:
    """One gateway (in this process, /metrics on a free port) and a few simulated robots, all through `proxy`."""

    def __init__(self, tmp_path: Path, mosquitto: Mosquitto, proxy: FaultProxy, **kafka: Any) -> None:
        tag = uuid.uuid4().hex[:6]
        bootstrap = f"127.0.0.1:{proxy.port}"
        self.tap = KafkaTap(bootstrap=bootstrap, topics=TOPICS)
        config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=f"fleet_{tag}",
                              mqtt_port=mosquitto.port, bootstrap=bootstrap, registry=tmp_path / "registry",
                              metrics_port=0, kafka={"max_inflight_records": 50, **kafka})
        self.robots = [SimRobot(f"r{i}_{tag}", f"fleet_{tag}", STREAMS) for i in range(3)]
        self.gateway = GatewayThread(config)
        self.fleet = MqttFleet(self.robots, port=mosquitto.port)

    def metrics(self) -> dict[str, float]:
        """The gateway's /metrics page: sample name -> value (unlabelled samples)."""
        port = self.gateway.gateway.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            text = page.read().decode()
        return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
                if not s.labels}

    def shows(self, condition: Callable[[dict[str, float]], bool], timeout_s: float = 30.0) -> dict[str, float]:
        """Scrape /metrics until `condition` holds for a page (at most `timeout_s`); that page, else {}."""
        pages: list[dict[str, float]] = []

        def check() -> bool:
            pages.append(self.metrics())
            return condition(pages[-1])
        return pages[-1] if wait_for(check, timeout_s) else {}

    def settled_count(self, name: str, quiet_s: float = 0.5, timeout_s: float = 30.0) -> float:
        """A counter once it stayed the same for `quiet_s` (what was on its way when the scrape began has landed)."""
        last = self.metrics()[name]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            now = self.metrics()[name]
            if now == last:
                break
            last = now
        return last

    def fleet_total(self) -> int:
        """Records the robots sent so far."""
        return sum(sum(robot.sent.values()) for robot in self.robots)

    def settle(self, total: int) -> dict[str, float]:
        """Wait until Kafka holds `total` of this run's records and the gateway is idle; its final metrics."""
        assert wait_for(lambda: len(kafka_heads(self.tap.snapshot())) >= total, 60), \
            f"{len(kafka_heads(self.tap.snapshot()))} of {total} in Kafka"
        assert self.shows(lambda m: m["swarm_gateway_inflight_records"] == 0 and m["swarm_gateway_held_records"] == 0
                          and m["swarm_gateway_backpressure"] == 0, 30)
        time.sleep(1.0)  # a late duplicate would show now
        return self.metrics()

    def close(self) -> None:
        self.fleet.close()
        self.gateway.close()
        self.tap.close()

    def check_seq_order(self) -> dict[str, int]:
        """Along each partition (Kafka offset order) every (robot, stream) record's first copy has a higher seq
        than every record of that stream before it: a consumer that drops seq <= last seen loses nothing and never
        sees time run backwards. A later copy of a record already there (at-least-once) is counted, not refused."""
        newest: dict[tuple[str, str, str], int] = {}
        seen: set[tuple[str, str, str, int]] = set()
        backwards: list[str] = []
        copies = 0
        records = [r for r in self.tap.snapshot() if r.payload[:1] == b"\x00"]
        for record in records:  # the tap appends each partition's records in offset order; one partition each
            head = avro_head(record.payload[5:])
            key = (record.topic, head.robot_id, head.stream)
            if (*key, head.seq) in seen:
                copies += 1
                continue
            seen.add((*key, head.seq))
            if key in newest and head.seq < newest[key]:
                backwards.append(f"{key[1]}/{key[2]}: seq {head.seq & 0xFFFFFFFF} after {newest[key] & 0xFFFFFFFF}")
            newest[key] = max(head.seq, newest.get(key, head.seq))
        assert not backwards, f"{len(backwards)} records out of seq order, first: {backwards[:5]}"
        return {"read": len(records), "copies": copies}

    def check_exactly_once(self, total: int, final: dict[str, float]) -> dict[str, int]:
        heads = kafka_heads(self.tap.snapshot())
        assert set(heads) == sent_heads(self.robots), f"{len(set(heads))} of {total} arrived"
        assert max(heads.values()) == 1, f"{sum(n - 1 for n in heads.values())} duplicates in Kafka"
        # every record received was produced or dropped as a duplicate (the robots' presence records come too)
        produced = final["swarm_gateway_records_produced_total"]
        received = final["swarm_gateway_records_received_total"]
        assert produced >= total and produced == received - final["swarm_gateway_records_deduplicated_total"]
        assert final["swarm_gateway_mqtt_acked_total"] == final["swarm_gateway_mqtt_messages_total"]
        self.check_seq_order()
        return {"sent": total, "arrived": len(heads), "duplicates": sum(n - 1 for n in heads.values())}


def _figures(case: str, **figures: Any) -> None:
    print(f"FIGURES {json.dumps({'case': case, **figures})}")


def test_a_cut_kafka_link_holds_records_and_then_writes_each_once(tmp_path: Path, mosquitto: Mosquitto,
                                                                   proxy: FaultProxy) -> None:
    """Mid-stream every connection to Kafka is reset and new ones refused for a while: librdkafka retries its
    idempotent requests, the gateway holds what is above its in-flight bound with MQTT messages unacked."""
    run = Run(tmp_path, mosquitto, proxy)
    try:
        sender = Sender(run.fleet, rounds=80, batch=2, period_s=0.05)
        assert wait_for(lambda: len(run.tap.snapshot()) >= 60, 30)
        proxy.refuse(True)
        proxy.drop()
        down = run.shows(lambda m: m["swarm_gateway_kafka_connected"] == 0 and m["swarm_gateway_backpressure"] == 1
                         and m["swarm_gateway_held_records"] > 0)
        time.sleep(FAULT_S)
        proxy.refuse(False)
        sender.join()
        final = run.settle(sender.sent)
    finally:
        proxy.refuse(False)
        run.close()
    assert down, "the gateway's metrics did not show the cut"
    figures = run.check_exactly_once(sender.sent, final)
    assert final["swarm_gateway_kafka_connected"] == 1
    _figures("gateway -> Kafka link cut mid-stream (proxy resets and refuses)", **figures,
             held_during=down["swarm_gateway_held_records"], dropped_by_proxy=proxy.counts["dropped"])


def test_a_slow_kafka_link_turns_into_backpressure_not_loss(tmp_path: Path, mosquitto: Mosquitto,
                                                             proxy: FaultProxy) -> None:
    """Every chunk between the gateway and Kafka waits 0.25 s: confirmations lag, the in-flight bound is reached,
    the gateway holds records (backpressure) and lets them go as confirmations come."""
    run = Run(tmp_path, mosquitto, proxy)
    try:
        sender = Sender(run.fleet, rounds=80, batch=2, period_s=0.05)
        assert wait_for(lambda: len(run.tap.snapshot()) >= 60, 30)
        proxy.delay(0.25)
        slow = run.shows(lambda m: m["swarm_gateway_backpressure"] == 1 and m["swarm_gateway_held_records"] > 0)
        time.sleep(FAULT_S)
        proxy.delay(0)
        sender.join()
        final = run.settle(sender.sent)
    finally:
        proxy.delay(0)
        run.close()
    assert slow, "the gateway's metrics did not show backpressure"
    figures = run.check_exactly_once(sender.sent, final)
    _figures("gateway -> Kafka link delayed 0.25 s per chunk", **figures,
             held_during=slow["swarm_gateway_held_records"])


def test_a_black_holed_kafka_link_stalls_without_an_error_and_loses_nothing(tmp_path: Path, mosquitto: Mosquitto,
                                                                          proxy: FaultProxy) -> None:
    """Bytes to and from Kafka vanish for a while with no reset (a network partition): no error reaches the
    gateway, yet its in-flight bound turns into backpressure; when the bytes flow again everything lands once."""
    run = Run(tmp_path, mosquitto, proxy)
    try:
        sender = Sender(run.fleet, rounds=80, batch=2, period_s=0.05)
        assert wait_for(lambda: len(run.tap.snapshot()) >= 60, 30)
        proxy.blackhole(True)
        stalled = run.shows(lambda m: m["swarm_gateway_backpressure"] == 1 and m["swarm_gateway_held_records"] > 0)
        confirmed_during = run.settled_count("swarm_gateway_records_produced_total")  # replies read before the hole
        time.sleep(FAULT_S)
        confirmed_after = run.metrics()["swarm_gateway_records_produced_total"]
        proxy.blackhole(False)
        sender.join()
        final = run.settle(sender.sent)
    finally:
        proxy.blackhole(False)
        run.close()
    assert stalled, "the gateway's metrics did not show the stall"
    assert confirmed_after == confirmed_during, "records were confirmed through a black hole"
    figures = run.check_exactly_once(sender.sent, final)
    _figures("gateway -> Kafka link black-holed (bytes held, no reset)", **figures,
             held_during=stalled["swarm_gateway_held_records"])


def test_records_librdkafka_gives_up_on_are_produced_again_once(tmp_path: Path, mosquitto: Mosquitto,
                                                                proxy: FaultProxy) -> None:
    """A cut longer than `delivery_timeout_s` (1 s): librdkafka gives up on the records it could not send, the
    gateway counts them as redelivered and produces them again; nothing was written, so nothing is written twice."""
    run = Run(tmp_path, mosquitto, proxy, delivery_timeout_s=1.0)
    try:
        assert run.fleet.send(5, batch=5) and run.fleet.wait(30)
        before = run.settle(run.fleet_total())  # nothing in flight when the link goes
        proxy.refuse(True)
        proxy.drop()
        assert run.fleet.send(10, batch=2) and run.fleet.wait(30)
        redelivering = run.shows(lambda m: m["swarm_gateway_records_redelivered_total"] > 0
                                 and m["swarm_gateway_kafka_connected"] == 0)
        proxy.refuse(False)
        total = run.fleet_total()
        final = run.settle(total)
    finally:
        proxy.refuse(False)
        run.close()
    assert before["swarm_gateway_records_redelivered_total"] == 0
    assert redelivering, "the gateway's metrics did not show records produced again"
    figures = run.check_exactly_once(total, final)
    _figures("gateway -> Kafka link cut longer than delivery_timeout_s", **figures,
             redelivered=final["swarm_gateway_records_redelivered_total"])


def test_records_timed_out_while_newer_ones_are_held_stay_in_seq_order(tmp_path: Path, mosquitto: Mosquitto,
                                                                        proxy: FaultProxy) -> None:
    """Robots keep sending through a cut several times longer than `delivery_timeout_s` (1 s), with a small
    in-flight bound: librdkafka gives records up while newer ones are held by the gateway. Each (robot, stream)
    is still in seq order in its partition afterwards, and every record is there."""
    run = Run(tmp_path, mosquitto, proxy, delivery_timeout_s=1.0, max_inflight_records=20)
    try:
        sender = Sender(run.fleet, rounds=100, batch=2, period_s=0.05)
        assert wait_for(lambda: len(run.tap.snapshot()) >= 60, 30)
        proxy.refuse(True)
        proxy.drop()
        given_up = run.shows(lambda m: m["swarm_gateway_records_redelivered_total"] > 0
                             and m["swarm_gateway_held_records"] > 0)
        time.sleep(FAULT_S)  # more records time out, more are held
        proxy.refuse(False)
        sender.join()
        final = run.settle(sender.sent)
    finally:
        proxy.refuse(False)
        run.close()
    assert given_up, "the gateway's metrics did not show records given up while others were held"
    # records on the wire when the link went may be in Kafka though librdkafka gave them up ("possibly persisted"):
    # produced again they are copies, which at-least-once allows; none is lost, none comes after a newer one
    assert set(kafka_heads(run.tap.snapshot())) == sent_heads(run.robots)
    order = run.check_seq_order()
    _figures("gateway -> Kafka link cut while records are held (seq order)", sent=sender.sent, **order,
             redelivered=final["swarm_gateway_records_redelivered_total"])
