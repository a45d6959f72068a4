"""The gateway through a real Kafka with SASL/SCRAM-SHA-512 and StandardAuthorizer ACLs.

One Kafka for the module: users swarm_admin (super user) and swarm_gateway, whose ACLs are exactly
`gateway_grants(config)`: create+write telemetry/state/event/presence, the DLQ and the health topic, read the
command topic in its command group. The MQTT side is the plain session Mosquitto.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from gateway_harness import CLI, GatewayProcess, wait_for
from paho.mqtt.enums import CallbackAPIVersion

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.brokers.kafka import KafkaBrokerSecurity
from swarm_bridge.brokers.kafka_acls import grant
from swarm_bridge.config import GatewayConfig, validate_config
from swarm_bridge.gateway.grants import gateway_grants
from swarm_bridge.gateway.heads import avro_head
from swarm_bridge.sim import DEFAULT_MIX, SimRobot
from swarm_bridge.sim.mqtt_fleet import MqttFleet
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "adm-7Qx-secret"
GATEWAY_PASSWORD = "gw-K2v-secret-9"
SECURITY = KafkaBrokerSecurity("swarm_admin", ADMIN_PASSWORD, {"swarm_gateway": GATEWAY_PASSWORD})
PASSWORD_ENV = "SWARM_TEST_KAFKA_PASSWORD"
COMMANDS = "fleet.command.task_command"
TELEMETRY = next(spec for spec in DEFAULT_MIX if spec.channel == "telemetry")


def _config_data(*, bootstrap: str, mqtt_port: int, registry: Path, fleet: str) -> dict[str, Any]:
    """A locked-down gateway config: SCRAM login from $SWARM_TEST_KAFKA_PASSWORD, no read-back of telemetry."""
    return {"gateway_id": "gw_secure", "fleet": fleet, "registry": str(registry), "metrics_port": 0,
            "mqtt": {"port": mqtt_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
            "kafka": {"bootstrap": bootstrap, "linger_ms": 2, "connect_timeout_s": 5,
                      "security": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                   "username": "swarm_gateway", "password_env": PASSWORD_ENV}},
            "dedup": {"rebuild_records": 0}}


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    """Kafka with SCRAM and ACLs; the gateway principal's grants applied, the topics created by the admin."""
    broker = Kafka(run_dir=tmp_path_factory.mktemp("secure-kafka"), port=free_port(), security=SECURITY)
    broker.start()
    try:
        admin = SECURITY.client_settings()
        ensure_kafka_topics(broker.bootstrap, [TELEMETRY.kafka_topic, COMMANDS, "fleet.dlq"], settings=admin)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(PASSWORD_ENV, GATEWAY_PASSWORD)
            config = validate_config(_config_data(bootstrap=broker.bootstrap, mqtt_port=1, registry=Path("."),
                                                  fleet="f"), GatewayConfig)
        grant(broker.bootstrap, admin_settings=admin, principal="User:swarm_gateway", grants=gateway_grants(config))
        yield broker
    finally:
        broker.stop()


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _read(bootstrap: str, topic: str, settings: dict[str, str], until: Callable[[list[Any]], bool], *,
          group: str | None = None) -> list[Any]:
    """Messages of `topic` from its start (errors included), read as `settings`' principal until `until`
    holds for them (at most 30 s)."""
    consumer = Consumer({**settings, "bootstrap.servers": bootstrap, "enable.auto.commit": False,
                         "group.id": group or f"t-{uuid.uuid4().hex[:6]}"})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        found: list[Any] = []
        deadline = time.monotonic() + 30
        while not until(found) and time.monotonic() < deadline:
            found += consumer.consume(100, 0.5)
        return found
    finally:
        consumer.close()


def test_the_gateway_works_end_to_end_through_scram_and_never_logs_its_password(
        secure_kafka: Kafka, mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, GATEWAY_PASSWORD)
    fleet = f"sec_{uuid.uuid4().hex[:6]}"
    config = _write(tmp_path, _config_data(bootstrap=secure_kafka.bootstrap, mqtt_port=mosquitto.port,
                                           registry=tmp_path / "registry", fleet=fleet))
    robot = SimRobot("amr_s1", fleet, streams=[TELEMETRY])
    commands: list[bytes] = []
    listener = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{fleet}", protocol=paho.MQTTv5)
    listener.on_message = lambda _c, _u, msg: commands.append(bytes(msg.payload))
    listener.connect("127.0.0.1", mosquitto.port)
    listener.subscribe(f"swarm/{fleet}/amr_s1/command/#", qos=1)
    listener.loop_start()
    gateway = GatewayProcess(config)
    sims = MqttFleet([robot], port=mosquitto.port)
    try:
        sims.send(5)
        assert sims.wait(30)
        admin = SECURITY.client_settings()
        mine = lambda found: [m for m in found if m.error() is None and m.key() == b"amr_s1"]  # noqa: E731
        records = mine(_read(secure_kafka.bootstrap, TELEMETRY.kafka_topic, admin, lambda f: len(mine(f)) >= 5))
        producer = Producer({**admin, "bootstrap.servers": secure_kafka.bootstrap})
        producer.produce(COMMANDS, b'{"robot_id": "amr_s1", "task_id": "t-9"}', b"amr_s1")
        assert producer.flush(10) == 0
        assert wait_for(lambda: bool(commands), 30)
        port = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", gateway.output)
        assert port is not None, gateway.output[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10) as page:
            metrics = page.read().decode()
    finally:
        sims.close()
        listener.disconnect()
        listener.loop_stop()
        output = gateway.stop()
    heads = sorted(h.seq & 0xFFFFFFFF for h in (avro_head(m.value()[5:]) for m in records))
    assert heads == [0, 1, 2, 3, 4]
    assert commands == [b'{"robot_id": "amr_s1", "task_id": "t-9"}']
    assert "kafka://" in output and "swarm_gateway_records_produced_total" in metrics
    broker_log = secure_kafka.log_path.read_text(errors="replace")  # storage format output and all it logged
    assert "Kafka Server started" in broker_log
    for secret in (GATEWAY_PASSWORD, ADMIN_PASSWORD):
        assert secret not in output and secret not in metrics and secret not in broker_log


def test_a_wrong_password_exits_3_with_the_reason_and_not_the_password(
        secure_kafka: Kafka, mosquitto: Mosquitto, tmp_path: Path) -> None:
    wrong = "not-the-gw-password-123"
    config = _write(tmp_path, _config_data(bootstrap=secure_kafka.bootstrap, mqtt_port=mosquitto.port,
                                           registry=tmp_path / "registry", fleet="f_wrong"))
    done = subprocess.run([*CLI, str(config)], capture_output=True, text=True, timeout=60,
                          env={**_env(), PASSWORD_ENV: wrong})
    assert done.returncode == 3, done.stderr[-2000:]
    assert f"error: kafka://{secure_kafka.bootstrap}: login refused: " in done.stderr
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in done.stderr
    assert f"Fix: check kafka.security (SASL_PLAINTEXT SCRAM-SHA-512 as 'swarm_gateway' (password from " \
           f"${PASSWORD_ENV}))" in done.stderr
    assert wrong not in done.stdout + done.stderr and GATEWAY_PASSWORD not in done.stdout + done.stderr


def _env() -> dict[str, str]:
    """This process's environment without the gateway's password variable."""
    return {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}


def test_the_gateway_principal_cannot_write_commands_nor_read_telemetry(secure_kafka: Kafka) -> None:
    settings = {**SECURITY.client_settings("swarm_gateway"), "bootstrap.servers": secure_kafka.bootstrap}
    errors: dict[str, KafkaError | None] = {}
    producer = Producer({**settings, "message.timeout.ms": 10_000})
    for topic in (COMMANDS, "fleet.command.x", "fleet.assignment.a", TELEMETRY.kafka_topic):
        producer.produce(topic, b"{}", b"amr_x",
                         on_delivery=lambda err, msg: errors.__setitem__(msg.topic() or "", err))
    assert producer.flush(30) == 0
    denied = KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert {topic: err.code() if err else None for topic, err in errors.items()} == {
        COMMANDS: denied, "fleet.command.x": denied, "fleet.assignment.a": denied, TELEMETRY.kafka_topic: None}

    # In its own command group (which it may use), so the one refusal left is the topic's.
    read = _read(secure_kafka.bootstrap, TELEMETRY.kafka_topic, SECURITY.client_settings("swarm_gateway"),
                 lambda found: bool(found), group="swarm_gateway_commands")
    assert [m.error().code() if m.error() else m.value() for m in read] == [denied]


def test_a_client_without_a_login_gets_nothing(secure_kafka: Kafka) -> None:
    """The client listener takes no anonymous client: PLAINTEXT gets no metadata at all."""
    from swarm_bridge.transport.probes import kafka_login_problem

    problem = kafka_login_problem(secure_kafka.bootstrap, settings={}, timeout_s=1.5)
    assert problem is not None and problem.startswith("no cluster metadata")
    assert kafka_login_problem(secure_kafka.bootstrap, settings=SECURITY.client_settings("swarm_gateway"),
                               timeout_s=10) is None


def test_cli_prints_where_the_password_comes_from_when_its_variable_is_unset(tmp_path: Path) -> None:
    data = _config_data(bootstrap=f"127.0.0.1:{free_port()}", mqtt_port=1883, registry=tmp_path, fleet="f")
    config = _write(tmp_path, data)
    done = subprocess.run([*CLI, str(config)], capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 2
    assert f"{config}: kafka.security.password_env: environment variable {PASSWORD_ENV} is not set" in done.stderr


def test_the_coordinator_logs_in_through_scram_and_never_prints_its_password(
        secure_kafka: Kafka, tmp_path: Path) -> None:
    """A coordinator instance with a `kafka.security` section: creates its sharded topics, begins transactions
    and owns its shards over SASL/SCRAM; `task submit` reaches it through the same login."""
    env = {**os.environ, PASSWORD_ENV: ADMIN_PASSWORD}
    host, _, port = secure_kafka.bootstrap.rpartition(":")
    config = tmp_path / "coordinator.yaml"
    config.write_text(yaml.safe_dump({
        "fleet": "secure", "shards": 1, "registry": str(tmp_path / "registry"),  # the command topic has 1
        "kafka": {"host": host, "port": int(port), "instance_id": "coord-secure", "connect_timeout_s": 10,
                  "security": {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                               "username": "swarm_admin", "password_env": PASSWORD_ENV}},
        "capabilities": {"amr": ["navigate"]},
    }))
    cli = [sys.executable, "-m", "swarm_bridge.cli"]
    process = subprocess.Popen([*cli, "coordinator", "--config", str(config)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any("owns shards" in line for line in lines):
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
        assert any("owns shards" in line for line in lines), "".join(lines[-20:])
        submit = subprocess.run([*cli, "task", "submit", "--config", str(config), "--task-id", "t-secure",
                                 "--kind", "navigate"], env=env, capture_output=True, text=True, timeout=60)
        assert submit.returncode == 0, submit.stdout + submit.stderr
        assert ADMIN_PASSWORD not in submit.stdout + submit.stderr
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert ADMIN_PASSWORD not in "".join(lines) + output
