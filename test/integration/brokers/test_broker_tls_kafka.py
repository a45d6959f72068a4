"""Kafka clients over TLS: a real Kafka with a SASL_SSL client listener (test PKI), reached through `security:`.

One Kafka for the module: its first listener SASL_PLAINTEXT (the broker's own traffic, the test's reads), a
second one SASL_SSL with a certificate for 127.0.0.1 signed by a test CA. The gateway (`kafka.security`) and a
robot's Kafka uplink (`uplink.security`) log in over it with `tls.ca_file`; a client trusting another CA is
refused with the TLS reason and the key to fix.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from gateway_harness import GatewayThread, kafka_heads, write_config
from pki import issue, write_pem

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.brokers.kafka import KafkaBrokerSecurity
from swarm_bridge.brokers.mosquitto import BrokerTls
from swarm_bridge.config import RobotBridgeConfig, validate_config
from swarm_bridge.sim import DEFAULT_MIX, SimRobot
from swarm_bridge.sim.mqtt_fleet import MqttFleet
from swarm_bridge.sim.taps import TappedRecord
from swarm_bridge.transport import LinkError, ensure_kafka_topics, open_uplink

pytestmark = pytest.mark.integration

PASSWORD = "tls-Hn3-secret-58"
SECURITY = KafkaBrokerSecurity("swarm_admin", "adm-Tq2-secret-04", {"swarm_client": PASSWORD}, acls=False)
PASSWORD_ENV = "SWARM_TEST_KAFKA_TLS_PASSWORD"
TELEMETRY = next(spec for spec in DEFAULT_MIX if spec.channel == "telemetry")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The test CA with the broker's certificate for 127.0.0.1, and a second CA that signed nothing here."""
    directory = tmp_path_factory.mktemp("kafka-pki")
    ca_key, ca_cert = issue("swarm kafka test CA", None, ca=True)
    ca, _ = write_pem(directory, "ca", ca_key, ca_cert)
    cert, key = write_pem(directory, "broker", *issue("kafka", (ca_key, ca_cert.subject), ip="127.0.0.1"))
    other, _ = write_pem(directory, "other-ca", *issue("another CA", None, ca=True))
    return {"ca": ca, "broker_cert": cert, "broker_key": key, "other_ca": other}


@pytest.fixture(scope="module")
def tls_kafka(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    broker = Kafka(run_dir=tmp_path_factory.mktemp("tls-kafka"), port=free_port(), security=SECURITY,
                   tls_port=free_port(), tls=BrokerTls(pki["ca"], pki["broker_cert"], pki["broker_key"],
                                                       require_client_cert=False))
    broker.start()
    try:
        ensure_kafka_topics(broker.bootstrap, [TELEMETRY.kafka_topic, "fleet.dlq", "fleet.command.task_command"],
                            settings=SECURITY.client_settings())
        yield broker
    finally:
        broker.stop()


def _security(ca: Path) -> dict[str, Any]:
    return {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": "swarm_client",
            "password_env": PASSWORD_ENV, "tls": {"ca_file": str(ca)}}


def _records(broker: Kafka, keep: Any, expected: int) -> list[TappedRecord]:
    """Records of the telemetry topic `keep` accepts, read as the admin on the plain SASL listener (at most 30 s)."""
    consumer = Consumer({**SECURITY.client_settings(), "bootstrap.servers": broker.bootstrap,
                         "enable.auto.commit": False, "group.id": f"t-{uuid.uuid4().hex[:6]}"})
    found: list[TappedRecord] = []
    try:
        consumer.assign([TopicPartition(TELEMETRY.kafka_topic, 0, OFFSET_BEGINNING)])
        for _ in range(60):
            found += [TappedRecord(m.topic() or "", m.key(), m.value() or b"", False, 0)
                      for m in consumer.consume(500, 0.5) if m.error() is None and keep(m)]
            if len(found) >= expected:
                break
    finally:
        consumer.close()
    return found


def test_the_gateway_produces_through_a_sasl_ssl_listener(tls_kafka: Kafka, pki: dict[str, Path], tmp_path: Path,
                                                          mosquitto: Mosquitto,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    fleet = f"tls_{uuid.uuid4().hex[:6]}"
    assert tls_kafka.tls_bootstrap is not None
    config = write_config(tmp_path / "gw.yaml", gateway_id="gw_tls", fleet=fleet, mqtt_port=mosquitto.port,
                          bootstrap=tls_kafka.tls_bootstrap, registry=tmp_path / "registry",
                          kafka={"connect_timeout_s": 10, "security": _security(pki["ca"])})
    robot = SimRobot(f"amr_{fleet}", fleet, streams=[TELEMETRY])
    gateway = GatewayThread(config)
    sims = MqttFleet([robot], port=mosquitto.port)
    try:
        sims.send(5)
        assert sims.wait(30)
        records = _records(tls_kafka, lambda m: m.key() == robot.robot_id.encode(), 5)
    finally:
        sims.close()
        gateway.close()
    assert sorted(seq & 0xFFFFFFFF for (_r, _s, seq) in kafka_heads(records)) == [0, 1, 2, 3, 4]
    assert gateway.counts.produced >= 5


def test_a_robot_kafka_uplink_delivers_over_sasl_ssl(tls_kafka: Kafka, pki: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    config = validate_config({
        "robot_id": "amr_tls", "fleet": "tls",
        "uplink": {"kind": "kafka", "port": tls_kafka.tls_port, "connect_timeout_s": 10,
                   "security": _security(pki["ca"])},
        "routes": [{"topic": "/x", "type": "std_msgs/msg/String", "channel": "event", "stream": "x",
                    "qos": "reliable", "format": "json"}],
    }, RobotBridgeConfig)
    run = uuid.uuid4().hex[:8].encode()
    link = open_uplink(config)
    try:
        for seq in range(5):
            link.send(TELEMETRY.kafka_topic, b"amr_tls", run + b":%d" % seq)
        assert link.flush(30) == 0
    finally:
        link.close()
    values = [r.payload for r in _records(tls_kafka, lambda m: (m.value() or b"").startswith(run), 5)]
    assert sorted(values) == [run + b":%d" % seq for seq in range(5)] and link.stats.failed == 0


def test_a_gateway_trusting_another_ca_is_refused_naming_the_tls_settings(
        tls_kafka: Kafka, pki: dict[str, Path], tmp_path: Path, mosquitto: Mosquitto,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm_bridge.config import GatewayConfig, load_config
    from swarm_bridge.gateway.service import Gateway

    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert tls_kafka.tls_bootstrap is not None
    path = write_config(tmp_path / "gw.yaml", gateway_id="gw_tls_bad", fleet="tls_bad", mqtt_port=mosquitto.port,
                        bootstrap=tls_kafka.tls_bootstrap, registry=tmp_path / "registry",
                        kafka={"connect_timeout_s": 10, "security": _security(pki["other_ca"])})
    gateway = Gateway(load_config(path, GatewayConfig))
    try:
        with pytest.raises(LinkError) as info:
            gateway.start()
    finally:
        gateway.close()
    message = str(info.value)
    assert message.startswith(f"kafka://{tls_kafka.tls_bootstrap}: login refused: ")
    assert "certificate verify failed" in message
    assert f"Fix: check kafka.security (SASL_SSL SCRAM-SHA-512 as 'swarm_client' (password from ${PASSWORD_ENV}))" \
           in message
    assert PASSWORD not in message
