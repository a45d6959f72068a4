"""The robot's Kafka uplink through a real Kafka with SASL/SCRAM-SHA-512 and ACLs (`uplink.security`).

One Kafka for the module: users swarm_admin (super user) and amr_007, which may only write (and describe) the
robot's telemetry topic. The uplink is opened from a validated robot config by `open_uplink`, as the node does.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from kafka_uplink_docs import PASSWORD_ENV
from kafka_uplink_docs import kafka_uplink_data as _data
from kafka_uplink_docs import scram_security as _scram

from swarm_bridge.brokers import Kafka, free_port
from swarm_bridge.brokers.kafka import KafkaBrokerSecurity
from swarm_bridge.brokers.kafka_acls import KafkaGrant, grant
from swarm_bridge.config import RobotBridgeConfig, validate_config
from swarm_bridge.transport import LinkError, ensure_kafka_topics, open_uplink

ROBOT_PASSWORD = "amr-Zq4-secret-77"
ADMIN_PASSWORD = "adm-Lw8-secret-31"
SECURITY = KafkaBrokerSecurity("swarm_admin", ADMIN_PASSWORD, {"amr_007": ROBOT_PASSWORD})
TOPIC = "fleet.telemetry.odometry"


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    """Kafka with SCRAM and ACLs; amr_007 may write the telemetry topic and nothing else."""
    broker = Kafka(run_dir=tmp_path_factory.mktemp("uplink-secure-kafka"), port=free_port(), security=SECURITY)
    broker.start()
    try:
        admin = SECURITY.client_settings()
        ensure_kafka_topics(broker.bootstrap, [TOPIC], settings=admin)
        grant(broker.bootstrap, admin_settings=admin, principal="User:amr_007",
              grants=[KafkaGrant("topic", TOPIC, "literal", operation) for operation in ("write", "describe")])
        yield broker
    finally:
        broker.stop()


def _values(bootstrap: str, run: str, expected: int) -> Counter[bytes]:
    """How often each value of this run's records is in the topic, read as the admin (at most 30 s)."""
    consumer = Consumer({**SECURITY.client_settings(), "bootstrap.servers": bootstrap, "enable.auto.commit": False,
                         "group.id": f"t-{uuid.uuid4().hex[:6]}"})
    seen: Counter[bytes] = Counter()
    try:
        consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
        for _ in range(60):
            for msg in consumer.consume(500, 0.5):
                if msg.error() is None and (msg.value() or b"").startswith(run.encode()):
                    assert msg.key() == b"amr_007"
                    seen[msg.value() or b""] += 1
            if sum(seen.values()) >= expected:
                break
    finally:
        consumer.close()
    return seen


@pytest.mark.integration
@pytest.mark.parametrize("source", ["env", "file"])
def test_the_kafka_uplink_delivers_through_scram_and_never_logs_its_password(
        secure_kafka: Kafka, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    if source == "env":
        monkeypatch.setenv(PASSWORD_ENV, ROBOT_PASSWORD)
        password = {"password_env": PASSWORD_ENV}
    else:
        secret = tmp_path / "kafka.password"
        secret.write_text(ROBOT_PASSWORD + "\n")
        secret.chmod(0o600)
        password = {"password_file": str(secret)}
    config = validate_config(_data(secure_kafka.port, _scram(**password)), RobotBridgeConfig)
    link = open_uplink(config)
    run = f"{source}-{uuid.uuid4().hex[:8]}"
    confirmed: list[bool] = []
    try:
        for seq in range(20):
            link.send(TOPIC, b"amr_007", f"{run}:{seq}".encode(), on_done=confirmed.append)
        assert link.flush(30) == 0
    finally:
        link.close()
    assert confirmed == [True] * 20 and link.stats.acked == 20 and link.stats.failed == 0
    assert _values(secure_kafka.bootstrap, run, 20) == Counter({f"{run}:{seq}".encode(): 1 for seq in range(20)})
    assert ROBOT_PASSWORD not in caplog.text and ROBOT_PASSWORD not in repr(config)


@pytest.mark.integration
@pytest.mark.parametrize("require", [True, False])
def test_a_wrong_password_fails_naming_the_key_and_never_the_password(
        secure_kafka: Kafka, require: bool, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Refused even with require_at_start false: waiting for the cluster does not fix a wrong password."""
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-amr-password-42"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    config = validate_config(_data(secure_kafka.port, _scram(password_env=PASSWORD_ENV), require_at_start=require),
                             RobotBridgeConfig)
    with pytest.raises(LinkError) as info:
        open_uplink(config)
    message = str(info.value)
    assert message.startswith(f"kafka://127.0.0.1:{secure_kafka.port}: login refused: ")
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in message
    assert message.endswith(f"Fix: check uplink.security (SASL_PLAINTEXT SCRAM-SHA-512 as 'amr_007' (password "
                            f"from ${PASSWORD_ENV})) against the cluster's users")
    assert wrong not in message and wrong not in caplog.text


@pytest.mark.integration
def test_a_kafka_uplink_without_a_login_is_refused_by_the_secure_listener(secure_kafka: Kafka) -> None:
    """PLAINTEXT (no `security:`) gets no metadata from a SASL listener: the robot fails at start, naming the fix."""
    config = validate_config(_data(secure_kafka.port, {}, connect_timeout_s=1.5), RobotBridgeConfig)
    with pytest.raises(LinkError, match=r"no cluster metadata within 1\.5 s .*Fix: start Kafka or fix uplink"):
        open_uplink(config)
