"""The MQTT uplink against a real Mosquitto that requires TLS client certificates and a password."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pki import issue as _issue
from pki import write_pem as _write

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.brokers.mosquitto import BrokerTls
from swarm_bridge.config import RobotBridgeConfig, validate_config
from swarm_bridge.transport import LinkError, open_uplink

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1 and a robot's client certificate, made for this test run."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _issue("swarm test CA", None, ca=True)
    ca_path, _ = _write(directory, "ca", ca_key, ca_cert)
    broker = _write(directory, "broker", *_issue("broker", (ca_key, ca_cert.subject), ip="127.0.0.1"))
    robot = _write(directory, "robot", *_issue("amr_007", (ca_key, ca_cert.subject)))
    return {"ca": ca_path, "broker_cert": broker[0], "broker_key": broker[1], "robot_cert": robot[0],
            "robot_key": robot[1]}


@pytest.fixture(scope="module")
def secure_broker(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(run_dir=tmp_path_factory.mktemp("secure-mosquitto"), port=free_port(),
                       tls=BrokerTls(pki["ca"], pki["broker_cert"], pki["broker_key"]),
                       users={"amr_007": "s3cret-pass"})
    broker.start()
    yield broker
    broker.stop()


def _config(broker: Mosquitto, pki: dict[str, Path], *, password_env: str, client_cert: bool = True,
            robot: str = "amr_007") -> RobotBridgeConfig:
    tls: dict[str, str] = {"ca_file": str(pki["ca"])}
    if client_cert:
        tls |= {"cert_file": str(pki["robot_cert"]), "key_file": str(pki["robot_key"])}
    return validate_config({
        "robot_id": robot, "fleet": "secure",
        "uplink": {"kind": "mqtt", "port": broker.port, "username": "amr_007", "password_env": password_env,
                   "tls": tls, "connect_timeout_s": 5},
        "routes": [{"topic": "/x", "type": "std_msgs/msg/String", "channel": "event", "stream": "x", "qos": "reliable",
                    "format": "json"}],
    }, RobotBridgeConfig)


def test_mtls_and_password_connect_and_carry_records(secure_broker: Mosquitto, pki: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_TEST_MQTT_PASSWORD", "s3cret-pass")
    publisher = open_uplink(_config(secure_broker, pki, password_env="SWARM_TEST_MQTT_PASSWORD"))
    listener = open_uplink(_config(secure_broker, pki, password_env="SWARM_TEST_MQTT_PASSWORD", robot="hub"))
    received: list[bytes] = []
    listener.subscribe("secure/t", lambda _topic, _key, payload: received.append(payload))
    try:
        time.sleep(0.5)
        publisher.send("secure/t", b"", b"over tls", qos=1)
        assert publisher.flush(10) == 0
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        publisher.close()
        listener.close()
    assert publisher.endpoint.startswith("mqtts://")
    assert received == [b"over tls"]


def test_wrong_password_is_refused_with_the_reason(secure_broker: Mosquitto, pki: dict[str, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_TEST_MQTT_PASSWORD", "wrong")
    with pytest.raises(LinkError, match=r"broker refused the connection: (Not authorized|Bad user name or password)"):
        open_uplink(_config(secure_broker, pki, password_env="SWARM_TEST_MQTT_PASSWORD"))


def test_missing_client_certificate_is_refused(secure_broker: Mosquitto, pki: dict[str, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_TEST_MQTT_PASSWORD", "s3cret-pass")
    with pytest.raises(LinkError, match=r"mqtts://127\.0\.0\.1:\d+: "):
        open_uplink(_config(secure_broker, pki, password_env="SWARM_TEST_MQTT_PASSWORD", client_cert=False))
