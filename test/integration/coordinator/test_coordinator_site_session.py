"""The single-site coordinator's MQTT session (on transport/mqtt_client.py) against a real Mosquitto: a
persistent session keeps what was sent while it was down, a broker restart is ridden out by the coordinator
and its robots, and a broker that cannot be reached or refuses the login ends `swarm-bridge coordinator`,
`task submit` and `fleet status` with exit 3 naming the endpoint and the fix. paho is the independent
second client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from site_harness import robots_of, site_doc, wait_for

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.site.runner import SiteCoordinator
from swarm_bridge.sim.records import SiteRobotRecords
from swarm_bridge.sim.site_fleet import SiteFleet

pytestmark = pytest.mark.integration

WAIT = 60.0  # generous: a busy 2-core machine must not fail these


def paho_publish(broker: Mosquitto, topic: str, payload: bytes) -> None:
    """Publish one QoS 1 message from an independent client and wait for its PUBACK."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"other-{uuid.uuid4().hex[:6]}", protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(WAIT)
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_request_sent_while_the_coordinator_was_down_is_answered_when_it_is_back(mosquitto: Mosquitto) -> None:
    """Persistent session (clean start off, session expiry): the broker keeps the request for the coordinator."""
    config = validate_config(site_doc(mosquitto, mqtt={"session_expiry_s": 300}), CoordinatorConfig)
    answers: list[dict[str, Any]] = []
    got = threading.Event()
    listener = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"listen-{uuid.uuid4().hex[:6]}",
                           protocol=paho.MQTTv5)

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        answers.append(json.loads(message.payload))
        got.set()

    subscribed = threading.Event()
    listener.on_message = on_message
    listener.on_subscribe = lambda *_args: subscribed.set()
    listener.connect(mosquitto.host, mosquitto.port)
    listener.loop_start()
    try:
        first = SiteCoordinator(config).start()  # makes the session and its subscriptions
        topics = first.topics
        first.stop()
        listener.subscribe(topics.result("late-1"), qos=1)
        assert subscribed.wait(WAIT)
        paho_publish(mosquitto, topics.submit, json.dumps({"task_id": "late-1", "kind": "pick"}).encode())
        with SiteCoordinator(config) as second:
            assert got.wait(WAIT), "no answer to the request sent while the coordinator was down"
            task = second.task("late-1")
            assert task is not None and task.state is TaskState.QUEUED
    finally:
        listener.disconnect()
        listener.loop_stop()
    assert answers == [{"task_id": "late-1", "accepted": True, "state": "queued", "reason": "", "duplicate": False}]


def test_the_coordinator_and_its_robots_ride_out_a_broker_restart(tmp_path: Path) -> None:
    with Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port()) as broker:
        config = validate_config(site_doc(broker, mqtt={"session_expiry_s": 300, "keepalive_s": 5}),
                                 CoordinatorConfig)
        coordinator = SiteCoordinator(config).start()
        robots = SiteFleet(host=broker.host, port=broker.port, robots=robots_of(3),
                            records=SiteRobotRecords(coordinator.topics, fmt=config.robot_format))
        try:
            robots.start()
            wait_for(lambda: coordinator.summary()["robots_online"] == 3, WAIT, "every robot online")
            assert coordinator.submit({"task_id": "before", "kind": "fly"}).accepted
            wait_for(lambda: (t := coordinator.task("before")) is not None and t.state is TaskState.DONE, WAIT,
                     "the task before the restart done")
            broker.stop()
            wait_for(lambda: not coordinator.link.connected, WAIT, "the coordinator to see the broker gone")
            broker.start()
            wait_for(lambda: coordinator.link.connected, WAIT, "the coordinator to reconnect")
            assert coordinator.submit({"task_id": "after", "kind": "fly"}).accepted
            wait_for(lambda: (t := coordinator.task("after")) is not None and t.state is TaskState.DONE, WAIT,
                     "the task after the restart done")
            assert robots.bad_commands == 0
        finally:
            robots.stop()
            coordinator.stop()


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swarm_bridge.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def _config_file(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = tmp_path / f"site-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_an_unreachable_broker_ends_each_command_with_exit_3_naming_it(tmp_path: Path) -> None:
    port = free_port()  # nobody listens here
    path = _config_file(tmp_path, site_doc(Mosquitto(run_dir=tmp_path, port=port), mqtt={"connect_timeout_s": 5}))
    where = f"mqtt://127.0.0.1:{port}"
    for args in (["coordinator"], ["task", "submit", "--task-id", "u1", "--kind", "pick"], ["fleet", "status"]):
        done = _cli(*args, "--config", path)
        assert done.returncode == 3, (args, done.stderr[-2000:])
        assert where in done.stderr and "start the broker or fix mqtt host/port" in done.stderr, done.stderr[-2000:]


def test_a_refused_login_ends_each_command_with_exit_3_saying_why(tmp_path: Path) -> None:
    with Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port(), users={"site": "right"}) as locked:
        path = _config_file(tmp_path, site_doc(locked, mqtt={"username": "site", "password_env": "SITE_MQTT_PW"}))
        for args in (["coordinator"], ["task", "submit", "--task-id", "r1", "--kind", "pick"], ["fleet", "status"]):
            done = _cli(*args, "--config", path, env={"SITE_MQTT_PW": "wrong"})
            assert done.returncode == 3, (args, done.stderr[-2000:])
            assert f"mqtt://127.0.0.1:{locked.port}" in done.stderr, done.stderr[-2000:]
            assert "refused the connection" in done.stderr and "password" in done.stderr, done.stderr[-2000:]


def test_fleet_status_without_a_coordinator_says_nothing_is_retained(mosquitto: Mosquitto, tmp_path: Path) -> None:
    doc = site_doc(mosquitto)
    done = _cli("fleet", "status", "--config", _config_file(tmp_path, doc))
    assert done.returncode == 3, done.stderr[-2000:]
    assert f"nothing retained on swarm/{doc['fleet']}/coordinator/status" in done.stderr, done.stderr[-2000:]
