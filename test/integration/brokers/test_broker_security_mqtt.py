"""Per-robot isolation on a real Mosquitto with the shipped ACL file (docker/mosquitto/acl).

Robots log in by password (user name = robot id) or by client certificate (CN = robot id, mTLS listener);
the gateway by password. Each "never arrives" assertion is ordered: the forbidden message is published and
acknowledged (PUBACK) before an allowed marker on the same connection, and the subscriber reads its socket
in order, so once the marker arrived a forbidden message that the broker had routed would be there too.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from gateway_harness import GatewayThread, wait_for, write_config
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pki import issue, write_pem

from swarm_bridge.brokers import Kafka, Mosquitto, free_port
from swarm_bridge.brokers.mosquitto import BrokerTls
from swarm_bridge.gateway.heads import avro_head
from swarm_bridge.sim import SimRobot
from swarm_bridge.sim.robots import DEFAULT_MIX
from swarm_bridge.sim.taps import KafkaTap
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
ACL = REPO / "docker" / "mosquitto" / "acl"
PASSWORDS = {"amr_a": "pw-a-1", "amr_b": "pw-b-2", "swarm_gateway": "pw-gateway-3"}
FLEET = "isolated"


@dataclass
class Client:
    """A paho MQTT client that records what it receives and the SUBACK reason codes."""

    paho: paho.Client
    received: list[tuple[str, bytes]] = field(default_factory=list)
    subacks: list[list[int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def topics(self) -> list[str]:
        with self.lock:
            return [topic for topic, _ in self.received]

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [payload for _, payload in self.received]

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe at QoS 1 and return the SUBACK reason codes."""
        before = len(self.subacks)
        self.paho.subscribe([(f, 1) for f in filters])
        assert wait_for(lambda: len(self.subacks) > before, 10), "no SUBACK"
        return self.subacks[before]

    def publish(self, topic: str, payload: bytes, properties: Properties | None = None) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK."""
        info = self.paho.publish(topic, payload, qos=1, properties=properties)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), f"no PUBACK for {topic}"

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def connect(port: int, user: str | None, *, tls: tuple[Path, Path, Path] | None = None,
            protocol: paho.MQTTProtocolVersion = paho.MQTTv5) -> Client:
    """A connected client: `user` logs in with its password from PASSWORDS, or `tls` = (ca, cert, key)."""
    client = Client(paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                                protocol=protocol))
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        (refused.append(str(reason)) if reason.is_failure else connected.set())

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        with client.lock:
            client.received.append((msg.topic, bytes(msg.payload)))

    def on_subscribe(_c: Any, _u: Any, _mid: Any, codes: Any, _p: Any) -> None:
        client.subacks.append([int(getattr(code, "value", code)) for code in codes])

    client.paho.on_connect, client.paho.on_message, client.paho.on_subscribe = on_connect, on_message, on_subscribe
    if user is not None:
        client.paho.username_pw_set(user, PASSWORDS[user])
    if tls is not None:
        client.paho.tls_set(ca_certs=str(tls[0]), certfile=str(tls[1]), keyfile=str(tls[2]))
    client.paho.connect("127.0.0.1", port)
    client.paho.loop_start()
    assert wait_for(lambda: connected.is_set() or bool(refused), 10), "no CONNACK"
    assert not refused, refused
    return client


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, the broker's certificate and robot amr_c's client certificate (CN = its robot id)."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = issue("swarm test CA", None, ca=True)
    ca, _ = write_pem(directory, "ca", ca_key, ca_cert)
    broker = write_pem(directory, "broker", *issue("broker", (ca_key, ca_cert.subject), ip="127.0.0.1"))
    robot = write_pem(directory, "amr_c", *issue("amr_c", (ca_key, ca_cert.subject)))
    return {"ca": ca, "broker_cert": broker[0], "broker_key": broker[1], "c_cert": robot[0], "c_key": robot[1]}


@pytest.fixture(scope="module")
def acl_broker(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """Mosquitto with the shipped ACL: passwords on `port`, certificate identities on `identity_port`."""
    port = free_port()
    identity_port = free_port()
    while identity_port == port:
        identity_port = free_port()
    broker = Mosquitto(run_dir=tmp_path_factory.mktemp("acl-mosquitto"), port=port, users=PASSWORDS, acl_file=ACL,
                       identity_port=identity_port,
                       identity_tls=BrokerTls(pki["ca"], pki["broker_cert"], pki["broker_key"]))
    broker.start()
    yield broker
    broker.stop()


def _topic(robot: str, channel: str, stream: str) -> str:
    return f"swarm/{FLEET}/{robot}/{channel}/{stream}"


def test_a_robot_cannot_publish_as_another_robot(acl_broker: Mosquitto) -> None:
    watcher = connect(acl_broker.port, "swarm_gateway")
    robot_a = connect(acl_broker.port, "amr_a")
    try:
        watcher.subscribe(f"swarm/{FLEET}/+/telemetry/#", f"swarm/{FLEET}/+/presence/#")
        for channel in ("telemetry", "presence"):  # both accepted (PUBACK) and dropped by the broker
            robot_a.publish(_topic("amr_b", channel, "odom" if channel == "telemetry" else "status"), b"forged")
        robot_a.publish(_topic("amr_a", "command", "task_command"), b"self-command")  # commands: gateway only
        robot_a.publish(_topic("amr_a", "telemetry", "odom"), b"marker")
        assert wait_for(lambda: b"marker" in watcher.payloads(), 10)
        assert watcher.received == [(_topic("amr_a", "telemetry", "odom"), b"marker")]
    finally:
        watcher.close()
        robot_a.close()


def test_a_robot_cannot_read_another_robots_commands(acl_broker: Mosquitto) -> None:
    gateway = connect(acl_broker.port, "swarm_gateway")
    robot_a = connect(acl_broker.port, "amr_a")
    robot_b = connect(acl_broker.port, "amr_b")
    try:
        # Granted (Mosquitto 2.0 answers SUBACK with the QoS), yet the broker delivers only what amr_a may read.
        assert robot_a.subscribe(f"swarm/{FLEET}/amr_b/command/#", f"swarm/{FLEET}/+/command/#") == [1, 1]
        robot_b.subscribe(f"swarm/{FLEET}/amr_b/command/#")
        gateway.publish(_topic("amr_b", "command", "task_command"), b"for-b")
        gateway.publish(_topic("amr_a", "command", "task_command"), b"for-a")
        assert wait_for(lambda: b"for-a" in robot_a.payloads() and b"for-b" in robot_b.payloads(), 10)
        assert robot_a.payloads() == [b"for-a"]  # once: only the +-filter matches what it may read
        assert robot_b.payloads() == [b"for-b"]
    finally:
        for client in (gateway, robot_a, robot_b):
            client.close()


@pytest.mark.parametrize("protocol", [paho.MQTTv5, paho.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_subscribing_to_everything_yields_only_what_the_robot_may_read(acl_broker: Mosquitto,
                                                                       protocol: paho.MQTTProtocolVersion) -> None:
    gateway = connect(acl_broker.port, "swarm_gateway")
    robot_a = connect(acl_broker.port, "amr_a", protocol=protocol)
    robot_b = connect(acl_broker.port, "amr_b")
    try:
        # What really happens on Mosquitto 2.0: SUBACK grants '#' and '$SYS/#' (QoS 1), and every message is then
        # checked against amr_a's read rights, so the subscription yields nothing that is not amr_a's.
        assert robot_a.subscribe("#", "$SYS/#") == [1, 1]
        robot_b.publish(_topic("amr_b", "telemetry", "odom"), b"b-telemetry")
        robot_b.publish(f"swarm/{FLEET}/amr_b/presence/status", b"b-online")
        gateway.publish(_topic("amr_b", "command", "task_command"), b"for-b")
        gateway.publish(_topic("amr_a", "command", "task_command"), b"for-a")
        assert wait_for(lambda: b"for-a" in robot_a.payloads(), 10)
        assert robot_a.received == [(_topic("amr_a", "command", "task_command"), b"for-a")]
    finally:
        for client in (gateway, robot_a, robot_b):
            client.close()


def test_a_certificate_robot_is_its_common_name(acl_broker: Mosquitto, pki: dict[str, Path]) -> None:
    assert acl_broker.identity_port is not None
    watcher = connect(acl_broker.port, "swarm_gateway")
    robot_c = connect(acl_broker.identity_port, None, tls=(pki["ca"], pki["c_cert"], pki["c_key"]))
    try:
        watcher.subscribe(f"swarm/{FLEET}/+/telemetry/#")
        robot_c.publish(_topic("amr_a", "telemetry", "odom"), b"forged-by-c")
        robot_c.publish(_topic("amr_c", "telemetry", "odom"), b"c-marker")
        assert wait_for(lambda: b"c-marker" in watcher.payloads(), 10)
        assert watcher.received == [(_topic("amr_c", "telemetry", "odom"), b"c-marker")]
    finally:
        watcher.close()
        robot_c.close()
    # Without a client certificate the identity listener never accepts the connection.
    bare = paho.Client(CallbackAPIVersion.VERSION2, client_id="t-bare", protocol=paho.MQTTv5)
    bare.tls_set(ca_certs=str(pki["ca"]))
    accepted = threading.Event()
    bare.on_connect = lambda _c, _u, _f, reason, _p: None if reason.is_failure else accepted.set()
    try:
        bare.connect("127.0.0.1", acl_broker.identity_port)
        for _ in range(30):
            if bare.loop(0.1) != paho.MQTT_ERR_SUCCESS:
                break
    except OSError:  # ssl.SSLError included: refused during the handshake
        pass
    assert not accepted.is_set()


def test_the_gateway_still_carries_robot_records_to_kafka_and_commands_back(
        acl_broker: Mosquitto, kafka: Kafka, pki: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The real gateway as swarm_gateway: robots' records reach Kafka (a forged one does not), commands reach
    their robot through the ACL'd broker."""
    assert acl_broker.identity_port is not None
    tag = uuid.uuid4().hex[:6]
    command_topic = f"fleet.command.acl_{tag}"
    telemetry = next(spec for spec in DEFAULT_MIX if spec.channel == "telemetry")
    ensure_kafka_topics(kafka.bootstrap, [telemetry.kafka_topic, command_topic, "fleet.dlq"])
    tap = KafkaTap(bootstrap=kafka.bootstrap, topics=[telemetry.kafka_topic])
    monkeypatch.setenv("SWARM_TEST_GATEWAY_MQTT_PASSWORD", PASSWORDS["swarm_gateway"])
    config = write_config(tmp_path / "gw.yaml", gateway_id=f"gw_{tag}", fleet=FLEET, mqtt_port=acl_broker.port,
                          bootstrap=kafka.bootstrap, registry=tmp_path / "registry",
                          mqtt={"username": "swarm_gateway", "password_env": "SWARM_TEST_GATEWAY_MQTT_PASSWORD",
                                "share_group": f"g_{tag}"},
                          down=[{"kafka_topic": command_topic,
                                 "mqtt": "{prefix}/{fleet}/{robot_id}/command/task_command"}])
    gateway = GatewayThread(config)
    robot_a = connect(acl_broker.port, "amr_a")
    robot_c = connect(acl_broker.identity_port, None, tls=(pki["ca"], pki["c_cert"], pki["c_key"]))
    sims = {"amr_a": SimRobot("amr_a", FLEET), "amr_c": SimRobot("amr_c", FLEET), "amr_b": SimRobot("amr_b", FLEET)}
    try:
        robot_a.subscribe(f"swarm/{FLEET}/amr_a/command/#")
        for name, client in (("amr_a", robot_a), ("amr_c", robot_c)):
            for _ in range(3):
                publish = sims[name].next(telemetry)
                props = Properties(PacketTypes.PUBLISH)
                props.ContentType = publish.content_type
                props.UserProperty = list(publish.user_properties)
                client.publish(publish.topic, publish.payload, props)
        forged = sims["amr_b"].next(telemetry)  # amr_a sends a record in amr_b's name, on amr_b's topic
        robot_a.publish(forged.topic, forged.payload)
        assert wait_for(lambda: len(tap.snapshot()) >= 6, 30)

        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        producer.produce(command_topic, b'{"robot_id": "amr_a", "task_id": "t1"}', b"amr_a")
        assert producer.flush(10) == 0
        assert wait_for(lambda: robot_a.payloads() != [], 30)
        assert gateway.counts.messages == 6
    finally:
        gateway.close()
        tap.close()
        robot_a.close()
        robot_c.close()
    heads = sorted((h.robot_id, h.seq & 0xFFFFFFFF) for h in (avro_head(r.payload[5:]) for r in tap.snapshot()))
    assert heads == [("amr_a", 0), ("amr_a", 1), ("amr_a", 2), ("amr_c", 0), ("amr_c", 1), ("amr_c", 2)]
    assert robot_a.received == [(f"swarm/{FLEET}/amr_a/command/task_command",
                                 b'{"robot_id": "amr_a", "task_id": "t1"}')]


def test_broker_cli_starts_mosquitto_with_the_shipped_acl_and_a_password_file(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    passwords = tmp_path / "passwords"
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([tool, "-c", "-b", str(passwords), "amr_a", PASSWORDS["amr_a"]], check=True, timeout=30)
    port = free_port()
    cli = [sys.executable, "-m", "swarm_bridge.cli", "broker"]
    run_dir = ["--run-dir", str(tmp_path / "run")]
    started = subprocess.run([*cli, "start", "mosquitto", *run_dir, "--mqtt-port", str(port), "--mqtt-acl", str(ACL),
                              "--mqtt-password-file", str(passwords)], capture_output=True, text=True, timeout=60)
    try:
        assert started.returncode == 0, started.stderr
        robot_a = connect(port, "amr_a")
        robot_a.close()
        anonymous = paho.Client(CallbackAPIVersion.VERSION2, client_id="t-anon", protocol=paho.MQTTv5)
        refused: list[str] = []
        anonymous.on_connect = lambda _c, _u, _f, reason, _p: refused.append(str(reason))
        anonymous.connect("127.0.0.1", port)
        anonymous.loop_start()
        assert wait_for(lambda: bool(refused), 10)
        anonymous.loop_stop()
        assert refused == ["Not authorized"]
    finally:
        subprocess.run([*cli, "stop", "mosquitto", *run_dir], capture_output=True, timeout=60, check=False)
    config = (tmp_path / "run" / "mosquitto.conf").read_text()
    assert f"acl_file {ACL}" in config and f"password_file {passwords}" in config


def test_the_shipped_mosquitto_conf_runs_both_ways_in(pki: dict[str, Path], tmp_path: Path) -> None:
    """docker/mosquitto/mosquitto.conf with its paths and ports pointed here: a password robot on the TLS
    listener and a certificate robot on the mTLS listener both get in and are confined by the ACL."""
    import getpass
    import shutil
    import subprocess

    from swarm_bridge.brokers.ports import accepts

    passwords = tmp_path / "passwords"
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    for user in ("amr_a", "swarm_gateway"):
        subprocess.run([tool, *(["-c"] if user == "amr_a" else []), "-b", str(passwords), user, PASSWORDS[user]],
                       check=True, timeout=30)
    tls_port, mtls_port = free_port(), free_port()
    (tmp_path / "data").mkdir()
    text = (REPO / "docker" / "mosquitto" / "mosquitto.conf").read_text()
    places = {"/mosquitto/config/passwords": passwords, "/mosquitto/config/acl": ACL,
              "/mosquitto/certs/ca.crt": pki["ca"], "/mosquitto/certs/broker.crt": pki["broker_cert"],
              "/mosquitto/certs/broker.key": pki["broker_key"], "/mosquitto/data/": tmp_path / "data"}
    for image_path, here in places.items():
        assert image_path in text
        text = text.replace(image_path, str(here) + ("/" if image_path.endswith("/") else ""))
    text = text.replace("listener 8883", f"listener {tls_port} 127.0.0.1")
    text = text.replace("listener 8884", f"listener {mtls_port} 127.0.0.1")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"{text}\nuser {getpass.getuser()}\n")
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: accepts("127.0.0.1", tls_port) and accepts("127.0.0.1", mtls_port), 10)
        watcher = connect(tls_port, "swarm_gateway", tls=(pki["ca"], pki["c_cert"], pki["c_key"]))
        robot_a = connect(tls_port, "amr_a", tls=(pki["ca"], pki["c_cert"], pki["c_key"]))  # user name wins here
        robot_c = connect(mtls_port, None, tls=(pki["ca"], pki["c_cert"], pki["c_key"]))
        watcher.subscribe(f"swarm/{FLEET}/+/telemetry/#")
        robot_a.publish(_topic("amr_c", "telemetry", "odom"), b"forged-by-a")
        robot_a.publish(_topic("amr_a", "telemetry", "odom"), b"from-a")
        robot_c.publish(_topic("amr_c", "telemetry", "odom"), b"from-c")
        assert wait_for(lambda: b"from-c" in watcher.payloads() and b"from-a" in watcher.payloads(), 10)
        assert sorted(watcher.payloads()) == [b"from-a", b"from-c"]
        for client in (watcher, robot_a, robot_c):
            client.close()
    finally:
        broker.terminate()
        broker.wait(timeout=10)
