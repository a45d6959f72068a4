"""The gateways' health on the fleet page (Kafka mode), in headless Chromium: a real gateway process between a real
Mosquitto and Kafka sends its health record; the page shows it up with the numbers the gateway's own /metrics
serves, stale once it is killed (no record for three intervals), up again when restarted, stopped after an orderly
stop."""

from __future__ import annotations

import re
import urllib.request
import uuid
from pathlib import Path

import pytest
from coordinator_fleet import coordinator_doc
from fleet_page import chromium, gateways_shown, screenshot, text, updates, wait_until
from gateway_harness import GatewayProcess, write_config
from prometheus_client.parser import text_string_to_metric_families

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.kafka.topics import ensure_topics
from swarm_bridge.fleetweb import FleetWeb, WebSettings
from swarm_bridge.sim import DEFAULT_MIX, SimRobot
from swarm_bridge.sim.mqtt_fleet import MqttFleet
from swarm_bridge.sim.robots import Publish

pytestmark = pytest.mark.integration

INTERVAL_S = 1.0  # the gateway's health.interval_s: stale after 3 s without a record


def metrics_of(gateway: GatewayProcess) -> dict[str, float]:
    """The gateway's /metrics, scraped: sample name -> value; a labelled one as `name:label value`."""
    port = next(int(m.group(1)) for line in gateway.lines
                if (m := re.search(r"metrics on http://127\.0\.0\.1:(\d+)/", line)))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            name = ":".join([sample.name, *sample.labels.values()])
            found[name] = sample.value
    return found


def dead_letters(scraped: dict[str, float]) -> dict[str, int]:
    """swarm_gateway_dead_letters by reason, those above 0."""
    prefix = "swarm_gateway_dead_letters_total:"
    return {name[len(prefix):]: int(v) for name, v in sorted(scraped.items()) if name.startswith(prefix) and v}


def agrees(row: dict[str, str], scraped: dict[str, float]) -> bool:
    """Whether a gateway's row on the page shows what its /metrics says (counts, links, drops by reason)."""
    drops = "; ".join(f"dead letter: {reason} {n}" for reason, n in dead_letters(scraped).items()) or "0"
    link = {1.0: "connected", 0.0: "down"}
    return (row["records up"] == str(int(scraped["swarm_gateway_records_produced_total"]))
            and row["commands down"] == str(int(scraped["swarm_gateway_commands_forwarded_total"]))
            and row["duplicates"] == str(int(scraped["swarm_gateway_records_deduplicated_total"]))
            and row["MQTT"] == link[scraped["swarm_gateway_mqtt_connected"]]
            and row["Kafka"] == link[scraped["swarm_gateway_kafka_connected"]]
            and row["drops"] == drops)


def test_a_gateway_is_up_with_its_own_counts_stale_when_killed_and_stopped_when_stopped(
        mosquitto: Mosquitto, kafka: Kafka, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    doc = coordinator_doc(kafka, tmp_path, topics={"gateway_health": f"t{tag}.health"})
    config = validate_config(doc, CoordinatorConfig)
    ensure_topics(config)  # the view topics the page reads, as a coordinator makes them
    fleet, gateway_id = f"fleet_{tag}", f"hub_{tag}"
    gateway_config = write_config(tmp_path / "gw.yaml", gateway_id=gateway_id, fleet=fleet, mqtt_port=mosquitto.port,
                                  bootstrap=kafka.bootstrap, registry=tmp_path / "registry", metrics_port=0,
                                  kafka={"dlq_topic": f"dlq_{tag}"},
                                  health={"topic": f"t{tag}.health", "interval_s": INTERVAL_S})
    web = FleetWeb(config, WebSettings(port=0, period_s=0.5)).start()
    browser = chromium(tmp_path / "chromium")
    gateway = GatewayProcess(gateway_config)
    robots = [SimRobot(f"r{i}_{tag}", fleet) for i in range(3)]
    sim = MqttFleet(robots, port=mosquitto.port)
    try:
        browser.get(web.url)
        wait_until(lambda: updates(browser) > 0, 60, "the page's first snapshot")
        wait_until(lambda: gateways_shown(browser).get(gateway_id, {}).get("state") == "up", 60,
                   f"{gateway_id} up on the page")
        sent = sim.send(3)
        assert sim.wait(60)
        for robot in robots:  # the same records again: duplicates the gateway drops
            robot.sent.clear()
        again = sim.send(1)
        odometry = DEFAULT_MIX[0]
        sim.publish(robots[0], Publish(robots[0].topic(odometry), b"\x13\x37 not a record",
                                       "application/octet-stream"))  # a dead letter, reason unknown_framing
        assert sim.wait(60)
        seen: list[tuple[dict[str, str], dict[str, float]]] = []

        def settled() -> bool:
            scraped = metrics_of(gateway)
            row = gateways_shown(browser)[gateway_id]
            seen[:] = [(row, scraped)]
            return (scraped["swarm_gateway_records_produced_total"] >= sent
                    and scraped["swarm_gateway_records_deduplicated_total"] == again
                    and dead_letters(scraped) == {"unknown_framing": 1}
                    and agrees(row, scraped))

        wait_until(settled, 90, "the page's gateway row to show what the gateway's /metrics says")
        row, scraped = seen[0]
        assert row["state"] == "up" and row["MQTT"] == "connected" and row["Kafka"] == "connected"
        assert row["drops"] == "dead letter: unknown_framing 1"
        print(f"{gateway_id} on the page: records up {row['records up']}, duplicates {row['duplicates']}, drops "
              f"{row['drops']}; its /metrics: produced {scraped['swarm_gateway_records_produced_total']:.0f}")
        screenshot(browser, tmp_path, "fleet_page_gateways.png")

        gateway.kill()  # SIGKILL: no last record; the page finds it silent after three intervals
        wait_until(lambda: gateways_shown(browser)[gateway_id]["state"] == "stale", 60,
                   f"{gateway_id} stale after SIGKILL (no record for 3 x {INTERVAL_S} s)")
        gateway = GatewayProcess(gateway_config)  # the same gateway again: up again
        wait_until(lambda: gateways_shown(browser)[gateway_id]["state"] == "up", 60, f"{gateway_id} up again")
        gateway.stop()  # SIGTERM: an orderly stop sends its last record, stopped
        wait_until(lambda: gateways_shown(browser)[gateway_id]["state"] == "stopped", 60, f"{gateway_id} stopped")
        stopped = gateways_shown(browser)[gateway_id]
        assert (stopped["MQTT"], stopped["Kafka"]) == ("down", "down")
        assert text(browser, "#gateway-note") == ""
    finally:
        sim.close()
        if gateway.proc.poll() is None:
            gateway.kill()
        browser.quit()
        web.stop()
