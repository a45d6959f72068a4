"""transport/mqtt_sessions.py (many MQTT 5 sessions on one loop, the fleet simulator's robots) against a real
Mosquitto 2, each behaviour checked from the other side with paho (an independent client) or a fake broker."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mqtt5
import paho.mqtt.client as paho
import pytest
from fault_proxy import FaultProxy
from mqtt_brokers import FakeBroker, FakeConn, TunedMosquitto
from mqtt_brokers import publish_packet as _publish
from paho.mqtt.enums import CallbackAPIVersion

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.transport.mqtt_client import LastWill, Message, MqttOptions
from swarm_bridge.transport.mqtt_sessions import MqttSession, MqttSessions

pytestmark = pytest.mark.integration

WAIT = 30.0  # generous: a busy 2-core machine must not fail these


def _options(port: int, name: str, **kw: Any) -> MqttOptions:
    return MqttOptions(**{"host": "127.0.0.1", "port": port, "client_id": f"{name}-{uuid.uuid4().hex[:6]}",
                          "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, **kw})


def pump_until(sessions: MqttSessions, done: Callable[[], bool], timeout_s: float = WAIT) -> bool:
    """Drive the sessions until `done` or `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        sessions.pump(0.01)
    return True


class Peer:
    """paho on its own thread: records (topic, payload, retain, content type, user properties) it receives."""

    def __init__(self, port: int, *filters: str) -> None:
        self.received: list[tuple[str, bytes, bool, str | None, list[tuple[str, str]]]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"paho-{uuid.uuid4().hex[:6]}",
                                  protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, *_a: c.subscribe([(f, 1) for f in filters])
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(WAIT), "paho: no SUBACK"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        props = msg.properties
        with self.lock:
            self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain),
                                  getattr(props, "ContentType", None), list(getattr(props, "UserProperty", []))))

    def payloads(self, prefix: str = "") -> list[bytes]:
        with self.lock:
            return [r[1] for r in self.received if r[0].startswith(prefix)]

    def publish(self, topic: str, payload: bytes) -> paho.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port()) as mosquitto:
        yield mosquitto


def test_many_sessions_publish_and_answer_on_one_loop(broker: Mosquitto) -> None:
    """30 sessions on one loop: every QoS 1 publish reaches paho with its content type and user properties
    (in order per session), each session's subscription (made in on_connect) receives paho's message, and
    paho gets its PUBACK."""
    got: dict[int, list[bytes]] = {}

    def on_connect(session: MqttSession, _present: bool) -> None:
        sessions.subscribe(session, [f"many/{session.index}/command"])

    def on_message(session: MqttSession, message: Message) -> None:
        got.setdefault(session.index, []).append(message.payload)

    sessions = MqttSessions(on_message=on_message, on_connect=on_connect)
    peer = Peer(broker.port, "many/+/data")
    try:
        for i in range(30):
            sessions.open(_options(broker.port, f"many{i}"))
        sessions.wait_connected(WAIT)
        for n in range(20):
            for session in sessions.sessions:
                sessions.publish(session, f"many/{session.index}/data", b"%d/%d" % (session.index, n),
                                 content_type="avro/binary", user_properties=[("ros_type", "x/msg/Y")])
        assert pump_until(sessions, lambda: sessions.unacked == 0), sessions.stats
        assert sessions.stats.acked == 600 and sessions.stats.disconnects == 0
        assert pump_until(sessions, lambda: len(peer.payloads()) == 600), len(peer.payloads())
        for i in range(30):
            assert peer.payloads(f"many/{i}/") == [b"%d/%d" % (i, n) for n in range(20)]
        assert {(r[3], tuple(r[4])) for r in peer.received} == {("avro/binary", (("ros_type", "x/msg/Y"),))}
        infos = [peer.publish(f"many/{i}/command", b"go %d" % i) for i in range(30)]
        assert pump_until(sessions, lambda: len(got) == 30), got
        assert got == {i: [b"go %d" % i] for i in range(30)}
        assert pump_until(sessions, lambda: all(info.is_published() for info in infos))
    finally:
        sessions.close()
        peer.close()


def test_cut_connection_resends_resubscribes_and_leaves_the_will(broker: Mosquitto) -> None:
    """A connection cut with publishes unacknowledged: the broker publishes the Last Will, the session
    reconnects with backoff, sends them again (DUP) and on_connect subscribes again; nothing is lost."""
    proxy = FaultProxy(broker.port)
    peer = Peer(broker.port, "cut/#")
    connects: list[bool] = []
    got: list[bytes] = []

    def on_connect(session: MqttSession, present: bool) -> None:
        connects.append(present)
        sessions.subscribe(session, ["cut/command"])

    sessions = MqttSessions(on_connect=on_connect, on_message=lambda _s, message: got.append(message.payload))
    try:
        session = sessions.open(_options(proxy.port, "cut", will=LastWill("cut/presence", b"offline", qos=1)))
        sessions.wait_connected(WAIT)
        proxy.blackhole(True)
        done: list[bool] = []
        for i in range(20):
            sessions.publish(session, "cut/data", b"c%d" % i, on_done=lambda ok, _code: done.append(ok))
        sessions.pump(0.1)
        proxy.drop()
        proxy.blackhole(False)
        assert pump_until(sessions, lambda: len(done) == 20), sessions.stats
        assert all(done) and sessions.stats.resent == 20 and connects == [False, False]
        assert pump_until(sessions, lambda: set(peer.payloads("cut/data")) == {b"c%d" % i for i in range(20)})
        assert pump_until(sessions, lambda: peer.payloads("cut/presence") == [b"offline"])
        peer.publish("cut/command", b"again")
        assert pump_until(sessions, lambda: got == [b"again"])
    finally:
        sessions.close()
        peer.close()
        proxy.close()


def test_window_honours_the_broker_receive_maximum(tmp_path: Path) -> None:
    """Never more in flight than the broker's Receive Maximum (Mosquitto would disconnect us): the rest waits
    in order and goes out as PUBACKs free slots."""
    with TunedMosquitto(run_dir=tmp_path / "m", port=free_port(), extra=["max_inflight_messages 5"]) as tuned:
        peer = Peer(tuned.port, "flow/#")
        sessions = MqttSessions()
        try:
            session = sessions.open(_options(tuned.port, "flow"))
            sessions.wait_connected(WAIT)
            for i in range(300):
                sessions.publish(session, "flow/out", b"f%d" % i)
            assert session.unacked == 300
            assert pump_until(sessions, lambda: sessions.unacked == 0), sessions.stats
            assert sessions.stats.max_inflight_seen == 5 and sessions.stats.disconnects == 0
            assert pump_until(sessions, lambda: len(peer.payloads()) == 300)
            assert peer.payloads() == [b"f%d" % i for i in range(300)]
        finally:
            sessions.close()
            peer.close()


def test_unreachable_broker_is_named_and_retried() -> None:
    """No broker: wait_connected names the endpoint and how many sessions are missing; nothing raises from pump."""
    port = free_port()
    sessions = MqttSessions()
    try:
        sessions.open(_options(port, "nobody"))
        with pytest.raises(ConnectionError, match=rf"mqtt://127.0.0.1:{port}: 1 of 1 sessions not connected"):
            sessions.wait_connected(1.5)
    finally:
        sessions.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_malformed_packet_disconnects_with_a_reason_and_reconnects() -> None:
    """A bad packet from the broker: the good one before it is handled, we DISCONNECT with 0x81, count it and
    reconnect; the session receives on the new connection."""

    def script(conn: FakeConn, index: int) -> None:
        conn.accept()
        conn.sock.sendall(_publish("m/t", b"before" if index == 0 else b"after", index + 1)
                          + (b"\x30\xff\xff\xff\xff\x01" if index == 0 else b""))
        conn.until_closed()

    fake = FakeBroker(script)
    got: list[bytes] = []
    sessions = MqttSessions(on_message=lambda _s, message: got.append(message.payload))
    try:
        sessions.open(_options(fake.port, "bad"))
        assert pump_until(sessions, lambda: got == [b"before", b"after"]), (got, sessions.stats)
        assert sessions.stats.malformed == 1 and sessions.stats.connects == 2
        assert "malformed packet from the broker" in (sessions.stats.last_error or "")
        assert [int(p.reason_code) for _, p in fake.of(mqtt5.DisconnectPacket)][:1] == [0x81]
        assert pump_until(sessions, lambda: any(p.packet_id == 2 for _, p in fake.of(mqtt5.PubAckPacket)))
    finally:
        sessions.close()
        fake.close()
