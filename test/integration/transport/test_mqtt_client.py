"""Conformance of transport/mqtt_client.py (MQTT 5 on the mqtt5 codec) against a real Mosquitto 2.

Every behaviour is checked from the other side: paho (an independent client) publishes what we receive and
receives what we publish, or the broker's own behaviour shows it (redelivery, Last Will, refusals). A
subscribe round trip (SUBACK) serves as a barrier: the broker handles one connection's packets in order, so
once the SUBACK is back every PUBACK sent before it has been processed. Malformed input comes from a fake
broker (a plain socket server here) that speaks just enough MQTT 5 to send bad packets on purpose.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mqtt5
import paho.mqtt.client as paho
import pytest
from fault_proxy import FaultProxy
from gateway_harness import wait_for
from mqtt_brokers import WAIT, FakeBroker, FakeConn, TunedMosquitto
from mqtt_brokers import publish_packet as _publish
from paho.mqtt.enums import CallbackAPIVersion
from pki import issue, write_pem

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.brokers.mosquitto import BrokerTls
from swarm_bridge.transport.mqtt_client import LastWill, Message, MqttClient, MqttOptions, tls_context
from swarm_bridge.transport.mqtt_errors import InflightFull, MqttRefused, PacketTooLarge, SubscribeRefused

pytestmark = pytest.mark.integration



def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def options(port: int, **kw: Any) -> MqttOptions:
    return MqttOptions(**{"host": "127.0.0.1", "port": port, "client_id": _id("ours"), "connect_timeout_s": 10.0,
                          "reconnect_min_s": 0.2, "reconnect_max_s": 1.0, **kw})


class Inbox:
    """What one of our clients received, in order (acked by the test when `auto_ack` is off)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    def __call__(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [m.payload for m in self.messages]

    def __len__(self) -> int:
        with self.lock:
            return len(self.messages)


def ours(opts: MqttOptions, *, auto_ack: bool = True, start: bool = True,
         on_connect: Callable[[bool], None] | None = None) -> tuple[MqttClient, Inbox]:
    inbox = Inbox()
    client = MqttClient(opts, on_message=inbox, auto_ack=auto_ack, on_connect=on_connect)
    if start:
        client.start()
    return client, inbox


class Peer:
    """The independent side: a paho MQTT 5 client recording (topic, payload, retain) of what it receives."""

    def __init__(self, port: int, *, tls: tuple[Path, Path, Path] | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.received: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=_id("paho"), protocol=paho.MQTTv5)
        connected, subacks = threading.Event(), list[int]()
        self._subacks = subacks
        self.client.on_connect = lambda *_a: connected.set()
        self.client.on_subscribe = lambda *_a: subacks.append(1)
        self.client.on_message = self._on_message
        if tls is not None:
            self.client.tls_set(ca_certs=str(tls[0]), certfile=str(tls[1]), keyfile=str(tls[2]))
        if auth is not None:
            self.client.username_pw_set(*auth)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(WAIT), "paho: no CONNACK"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def subscribe(self, *filters: str) -> None:
        before = len(self._subacks)
        self.client.subscribe([(f, 1) for f in filters])
        assert wait_for(lambda: len(self._subacks) > before, WAIT), "paho: no SUBACK"

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=WAIT)
        assert info.is_published(), f"paho: no PUBACK for {topic}"

    def payloads(self) -> list[bytes]:
        with self.lock:
            return [p for _, p, _ in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private Mosquitto per test (these restart, cut and tune it)."""
    with Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port()) as mosquitto:
        yield mosquitto


def barrier(client: MqttClient) -> None:
    """Once this returns, the broker has processed every packet `client` sent before (see module doc)."""
    client.subscribe([f"barrier/{uuid.uuid4().hex}"])


# --- the basics -------------------------------------------------------------------------------------


def test_qos1_round_trip_both_ways(broker: Mosquitto) -> None:
    """Ours -> paho: every QoS 1 publish arrives in order and gets on_done(True); paho -> ours: all arrive."""
    peer = Peer(broker.port)
    peer.subscribe("up/#")
    client, inbox = ours(options(broker.port))
    try:
        assert client.subscribe(["down/a", "down/b"]) == [1, 1]  # several filters in one SUBSCRIBE
        done: list[tuple[bool, int]] = []
        sent = [f"m{i}".encode() * 20 for i in range(500)]
        for payload in sent:
            client.publish("up/x", payload, on_done=lambda ok, code: done.append((ok, code)))
        assert wait_for(lambda: len(peer.payloads()) == 500 and len(done) == 500, WAIT), (len(peer.payloads()),
                                                                                           len(done))
        assert peer.payloads() == sent
        assert done == [(True, 0)] * 500 and client.inflight == 0
        for i in range(50):
            peer.publish("down/a" if i % 2 else "down/b", b"d%d" % i)
        assert wait_for(lambda: len(inbox) == 50, WAIT)
        assert inbox.payloads() == [b"d%d" % i for i in range(50)]
        assert client.stats.received == 50 and client.stats.malformed == 0
    finally:
        client.close()
        peer.close()


def test_read_gather_takes_a_stream_in_fewer_reads_every_message_once_in_order(broker: Mosquitto) -> None:
    """`read_gather_s` (the gateway's up client): between reads the network thread waits, so a broker writing each
    PUBLISH on its own is read a batch at a time; every message still arrives once, in order, and is acked (paho's
    publish returns only on its PUBACK, our acks go to the broker in the same read turns)."""
    peer = Peer(broker.port)
    client, inbox = ours(options(broker.port, read_gather_s=0.005), auto_ack=False)
    try:
        client.subscribe(["gather/#"])
        acked: list[Message] = []

        def ack_what_came() -> bool:
            with inbox.lock:
                new = inbox.messages[len(acked):]
            client.ack_all(new)
            acked.extend(new)
            return len(acked) == 300

        def send() -> None:
            for i in range(300):
                peer.publish("gather/t", b"g%d" % i)

        sender = threading.Thread(target=send)
        sender.start()
        assert wait_for(ack_what_came, WAIT), len(acked)
        sender.join(WAIT)
        assert inbox.payloads() == [b"g%d" % i for i in range(300)]
        assert not any(m.duplicate for m in inbox.messages)
        barrier(client)  # every PUBACK reached the broker: nothing is redelivered after a cut
    finally:
        client.close()
        peer.close()


def test_manual_acks_leave_in_arrival_order(broker: Mosquitto) -> None:
    """An ack of a later message does not send its PUBACK before the earlier ones are acked: after a cut the
    broker redelivers (DUP) exactly the messages from the first unacked one on."""
    cid = _id("acks")
    persistent = {"client_id": cid, "clean_start": False, "session_expiry_s": 300}
    client, inbox = ours(options(broker.port, **persistent), auto_ack=False)
    peer = Peer(broker.port)
    try:
        client.subscribe(["acks/#"])
        for i in range(4):
            peer.publish("acks/t", b"a%d" % i)
        assert wait_for(lambda: len(inbox) == 4, WAIT)
        m0, _m1_never_acked, m2, m3 = inbox.messages
        client.ack(m0)   # PUBACK 0 leaves
        client.ack(m2)   # held: m1 is not acked
        client.ack(m3)   # held too
        barrier(client)
        client.close(disconnect=False)  # a cut: no DISCONNECT, the session stays
        again, inbox2 = ours(options(broker.port, **persistent), auto_ack=True)
        try:
            assert wait_for(lambda: len(inbox2) == 3, WAIT), inbox2.payloads()
            assert inbox2.payloads() == [b"a1", b"a2", b"a3"]
            assert all(m.duplicate for m in inbox2.messages), inbox2.messages
        finally:
            again.close()
    finally:
        client.close()
        peer.close()


def test_ack_all_acks_several_in_one_call_in_arrival_order(broker: Mosquitto) -> None:
    """`ack_all` is `ack` for many messages at once: PUBACKs still leave only up to the first unacked message, and
    an ack of a message from an older connection is ignored; after a cut only the unacked ones come again."""
    cid = _id("ackall")
    persistent = {"client_id": cid, "clean_start": False, "session_expiry_s": 300}
    client, inbox = ours(options(broker.port, **persistent), auto_ack=False)
    peer = Peer(broker.port)
    try:
        client.subscribe(["ackall/#"])
        for i in range(6):
            peer.publish("ackall/t", b"a%d" % i)
        assert wait_for(lambda: len(inbox) == 6, WAIT)
        m0, m1, m2, m3, m4, _m5_never_acked = inbox.messages
        client.ack_all([m0, m2, m3])  # PUBACK 0 leaves, 2 and 3 wait for 1
        client.ack_all([m4, m1])  # 1 to 4 leave
        client.ack_all([])
        barrier(client)
        client.close(disconnect=False)  # a cut: no DISCONNECT, the session stays
        again, inbox2 = ours(options(broker.port, **persistent), auto_ack=True)
        try:
            assert wait_for(lambda: len(inbox2) == 1, WAIT), inbox2.payloads()
            assert inbox2.payloads() == [b"a5"] and inbox2.messages[0].duplicate
            again.ack_all([m0])  # of the first connection: nothing to send, no error
        finally:
            again.close()
    finally:
        client.close()
        peer.close()


def test_session_resumed_after_broker_restart_nothing_lost(broker: Mosquitto) -> None:
    """A persistent session survives a broker restart: what was published while we were away is delivered on
    reconnect without subscribing again, and our own QoS 1 publishes held across the restart all arrive."""
    cid = _id("resume")
    persistent = {"client_id": cid, "clean_start": False, "session_expiry_s": 600}
    sessions: list[bool] = []
    sub, _ = ours(options(broker.port, **persistent), on_connect=sessions.append)
    sub.subscribe(["resume/#"])
    sub.close()  # DISCONNECT with session expiry 600 s: the broker keeps the session and queues for it
    pub, _ = ours(options(broker.port, client_id=_id("pub")))
    peer = Peer(broker.port)
    try:
        for i in range(100):
            peer.publish("resume/a", b"q%d" % i)
        peer.close()
        broker.stop()
        done: list[bool] = []
        for i in range(100):  # the broker is down: held in flight, sent once it is back
            pub.publish("resume/b", b"h%d" % i, on_done=lambda ok, _code: done.append(ok))
        broker.start()
        sub2, inbox2 = ours(options(broker.port, **persistent), on_connect=sessions.append)
        try:
            assert wait_for(lambda: len(done) == 100 and len(inbox2) >= 200, WAIT), (len(done), len(inbox2))
            assert all(done)
            assert sessions == [False, True]  # the second CONNACK said: session present
            got = inbox2.payloads()
            assert got[:100] == [b"q%d" % i for i in range(100)]  # queued ones first, in order
            assert sorted(set(got[100:])) == sorted({b"h%d" % i for i in range(100)})
        finally:
            sub2.close()
    finally:
        pub.close()


def test_subscriptions_restored_on_a_new_session(broker: Mosquitto) -> None:
    """A clean session is gone after a broker restart: the client subscribes again by itself on reconnect."""
    sessions: list[bool] = []
    client, inbox = ours(options(broker.port), on_connect=sessions.append)
    try:
        client.subscribe(["again/#", "$share/g2/again2/#"])
        broker.stop()
        broker.start()
        assert wait_for(lambda: client.stats.connects == 2 and client.connected, WAIT), client.stats
        barrier(client)  # the re-SUBSCRIBE went out first on this connection
        peer = Peer(broker.port)
        peer.publish("again/x", b"one")
        peer.publish("again2/x", b"two")
        peer.close()
        assert wait_for(lambda: inbox.payloads() == [b"one", b"two"], WAIT), inbox.payloads()
        assert sessions == [False, False]
    finally:
        client.close()


def test_unsubscribe_removes_filters_of_an_earlier_run_of_the_session(broker: Mosquitto) -> None:
    """A persistent session keeps its filters across runs; `unsubscribe` removes them (0x00), also one the
    session never had (0x11), and the client does not subscribe them again on a new session."""
    client_id = _id("ours")
    first, _ = ours(options(broker.port, client_id=client_id, clean_start=False, session_expiry_s=60))
    first.subscribe(["old/+/x", "kept/#"])
    first.close()
    client, inbox = ours(options(broker.port, client_id=client_id, clean_start=False, session_expiry_s=60))
    try:
        assert client.unsubscribe(["old/+/x", "never/#"]) == [0x00, 0x11]
        peer = Peer(broker.port)
        peer.publish("old/a/x", b"gone")
        peer.publish("kept/a", b"kept")
        peer.close()
        assert wait_for(lambda: inbox.payloads() == [b"kept"], WAIT), inbox.payloads()
        barrier(client)
        assert inbox.payloads() == [b"kept"]
    finally:
        client.close()


def test_qos1_resent_after_a_cut_nothing_lost(broker: Mosquitto) -> None:
    """Publishes whose PUBACK was lost with the connection are sent again after the reconnect (DUP; the flag
    itself is checked on the wire by the fake broker test) and each reaches the subscriber."""
    proxy = FaultProxy(broker.port)
    peer = Peer(broker.port)
    peer.subscribe("cut/#")
    client, _ = ours(options(proxy.port, client_id=_id("cut"), clean_start=False, session_expiry_s=300))
    try:
        done: list[bool] = []
        proxy.blackhole(True)
        for i in range(20):
            client.publish("cut/x", b"c%d" % i, on_done=lambda ok, _code: done.append(ok))
        assert wait_for(lambda: client.stats.sent == 20, WAIT)
        proxy.drop()
        proxy.blackhole(False)
        assert wait_for(lambda: len(done) == 20, WAIT), (len(done), client.stats)
        assert all(done) and client.stats.resent == 20 and client.stats.connects >= 2
        assert wait_for(lambda: set(peer.payloads()) == {b"c%d" % i for i in range(20)}, WAIT)
    finally:
        client.close()
        peer.close()
        proxy.close()


def test_receive_maximum_flow_control(tmp_path: Path) -> None:
    """Outgoing: never more in flight than the broker's Receive Maximum (Mosquitto would disconnect us);
    incoming: the broker sends at most our receive_max unacked messages, the rest once we ack."""
    with TunedMosquitto(run_dir=tmp_path / "m", port=free_port(), extra=["max_inflight_messages 5"]) as tuned:
        peer = Peer(tuned.port)
        peer.subscribe("flow/#")
        client, inbox = ours(options(tuned.port, receive_max=4), auto_ack=False)
        try:
            assert client._inflight.limit == 5
            for i in range(300):
                client.publish("flow/out", b"f%d" % i)
            assert wait_for(lambda: len(peer.payloads()) == 300, WAIT)
            assert peer.payloads() == [b"f%d" % i for i in range(300)]
            assert client.stats.max_inflight_seen == 5 and client.stats.disconnects == 0
            client.subscribe(["flow/in"])
            for i in range(10):
                peer.publish("flow/in", b"i%d" % i)
            assert wait_for(lambda: len(inbox) == 4, WAIT)
            barrier(client)
            peer.publish("flow/in", b"last")
            barrier(client)
            assert len(inbox) == 4  # the broker holds the rest until we ack
            for message in list(inbox.messages):
                client.ack(message)
            assert wait_for(lambda: len(inbox) == 11, WAIT), (inbox.payloads(), client.stats)
            assert inbox.payloads() == [b"i%d" % i for i in range(10)] + [b"last"]
        finally:
            client.close()
            peer.close()


def test_publish_reports_a_full_window(tmp_path: Path) -> None:
    """With every slot taken, publish(timeout_s=0) raises InflightFull at once and a timed publish waits
    then raises; nothing beyond the window goes out (the fake broker never acks and counts)."""
    fake = FakeBroker(lambda conn, _i: conn.accept_and_hold(receive_max=3))
    client, _ = ours(options(fake.port))
    try:
        for i in range(3):
            client.publish("w/x", b"%d" % i)
        with pytest.raises(InflightFull, match="3 QoS 1 messages"):
            client.publish("w/x", b"more", timeout_s=0)
        with pytest.raises(InflightFull):
            client.publish("w/x", b"more", timeout_s=0.3)
        assert wait_for(lambda: fake.publishes() == 3, WAIT)
        client.publish("w/x", b"qos0", qos=0)  # QoS 0 is not held by the window
        assert wait_for(lambda: fake.publishes() == 4, WAIT)
        blocked: list[BaseException] = []

        def wait_forever() -> None:
            try:
                client.publish("w/x", b"blocked")  # no timeout: waits for a slot
            except BaseException as exc:
                blocked.append(exc)

        waiter = threading.Thread(target=wait_forever)
        waiter.start()
        client.close()  # releases the waiting publisher with an error; the 3 in flight fail
        waiter.join(WAIT)
        assert not waiter.is_alive() and len(blocked) == 1 and "after close" in str(blocked[0])
        assert client.stats.failed == 3
    finally:
        client.close()
        fake.close()


def test_keepalive_pings_and_detects_a_dead_link(broker: Mosquitto) -> None:
    """Idle for 3 keep-alives the connection stays up (PINGREQ answered; else Mosquitto drops us at 1.5x); a
    link that goes silent is found dead from the keep-alive, then the client reconnects once it is back."""
    proxy = FaultProxy(broker.port)
    client, _ = ours(options(proxy.port, keepalive_s=1))
    try:
        assert not wait_for(lambda: client.stats.disconnects > 0, 3.5)
        proxy.blackhole(True)
        assert wait_for(lambda: not client.connected, WAIT)
        assert "keep-alive 1 s" in (client.stats.last_error or ""), client.stats.last_error
        proxy.drop()
        proxy.blackhole(False)
        assert client.wait_connected(WAIT)
    finally:
        client.close()
        proxy.close()


def test_shared_subscription_splits_the_stream(broker: Mosquitto) -> None:
    """Two clients in one $share group together get each message exactly once, each some of them."""
    a, inbox_a = ours(options(broker.port))
    b, inbox_b = ours(options(broker.port))
    peer = Peer(broker.port)
    try:
        a.subscribe(["$share/g1/shared/#", "other/a"])
        b.subscribe(["$share/g1/shared/#"])
        for i in range(60):
            peer.publish("shared/t", b"s%d" % i)
        assert wait_for(lambda: len(inbox_a) + len(inbox_b) == 60, WAIT)
        got = inbox_a.payloads() + inbox_b.payloads()
        assert sorted(got) == sorted(b"s%d" % i for i in range(60))
        assert len(inbox_a) > 0 and len(inbox_b) > 0
    finally:
        a.close()
        b.close()
        peer.close()


def test_retained_and_last_will(broker: Mosquitto) -> None:
    """A retained publish reaches a later subscriber flagged retained; the Last Will is published when we
    vanish without DISCONNECT, and not after a normal close."""
    will = LastWill("presence/r1", b"offline", qos=1, retain=True)
    client, _ = ours(options(broker.port, will=will))
    client.publish("presence/r1", b"online", retain=True)
    barrier(client)
    watcher = Peer(broker.port)
    try:
        watcher.subscribe("presence/#")
        assert wait_for(lambda: watcher.received == [("presence/r1", b"online", True)], WAIT), watcher.received
        client.close(disconnect=False)  # a cut: the broker publishes the will
        assert wait_for(lambda: (("presence/r1", b"offline", False) in watcher.received), WAIT), watcher.received
        polite, _ = ours(options(broker.port, will=LastWill("presence/r2", b"gone")))
        polite.close()
        marker = Peer(broker.port)
        marker.publish("presence/marker", b"m")
        marker.close()
        assert wait_for(lambda: any(t == "presence/marker" for t, _, _ in watcher.received), WAIT)
        assert not any(t == "presence/r2" for t, _, _ in watcher.received)
    finally:
        watcher.close()


def test_retain_as_published_or_only_from_the_retained_store(broker: Mosquitto) -> None:
    """A retained publish arriving live is flagged retained only with retain_as_published (the default);
    without it (MQTT's own default, the taps') only the retained store's copy for a new subscriber is."""
    keep, kept = ours(options(broker.port))
    plain, live = ours(options(broker.port))
    try:
        keep.subscribe(["rap/#"])
        plain.subscribe(["rap/#"], retain_as_published=False)
        peer = Peer(broker.port)
        peer.publish("rap/r1", b"online", retain=True)
        peer.close()
        assert wait_for(lambda: len(kept) == 1 and len(live) == 1, WAIT)
        assert (kept.messages[0].retain, live.messages[0].retain) == (True, False)
        late, stored = ours(options(broker.port))
        late.subscribe(["rap/#"], retain_as_published=False)
        assert wait_for(lambda: len(stored) == 1, WAIT)
        assert stored.messages[0].retain and stored.payloads() == [b"online"]
        late.close()
    finally:
        keep.close()
        plain.close()


# --- security ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = issue("mqtt5 test CA", None, ca=True)
    ca, _ = write_pem(directory, "ca", ca_key, ca_cert)
    server = write_pem(directory, "broker", *issue("broker", (ca_key, ca_cert.subject), ip="127.0.0.1"))
    client = write_pem(directory, "robot", *issue("robot", (ca_key, ca_cert.subject)))
    return {"ca": ca, "cert": server[0], "key": server[1], "client_cert": client[0], "client_key": client[1]}


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_and_mtls(pki: dict[str, Path], tmp_path: Path, mutual: bool) -> None:
    """Over TLS (and mTLS: the broker requires our certificate) a QoS 1 round trip with paho works; under
    mTLS a client without a certificate gets no session (clear error naming the endpoint)."""
    tls = BrokerTls(pki["ca"], pki["cert"], pki["key"], require_client_cert=mutual)
    peer_tls = (pki["ca"], pki["client_cert"], pki["client_key"])
    with Mosquitto(run_dir=tmp_path / "m", port=free_port(), tls=tls) as secured:
        context = tls_context(str(pki["ca"]), str(pki["client_cert"]) if mutual else None,
                              str(pki["client_key"]) if mutual else None)
        client, inbox = ours(options(secured.port, tls=context))
        peer = Peer(secured.port, tls=peer_tls)
        try:
            assert client.endpoint.startswith("mqtts://")
            client.subscribe(["sec/in"])
            peer.subscribe("sec/out")
            client.publish("sec/out", b"x" * 50_000)  # several TLS records
            peer.publish("sec/in", b"y" * 50_000)
            assert wait_for(lambda: peer.payloads() == [b"x" * 50_000] and inbox.payloads() == [b"y" * 50_000],
                            WAIT)
        finally:
            client.close()
            peer.close()
        if mutual:
            bare, _ = ours(options(secured.port, tls=tls_context(str(pki["ca"])), connect_timeout_s=3.0),
                           start=False)
            with pytest.raises(ConnectionError, match=f"mqtts://127.0.0.1:{secured.port}"):
                bare.start()


def test_wrong_password_and_acl_refusal(tmp_path: Path) -> None:
    """A wrong password: MqttRefused naming the endpoint and the fix, no retry loop; a publish the ACL
    forbids: on_done(False, 0x87) and counted as failed, while an allowed one is delivered."""
    acl = tmp_path / "acl"
    acl.write_text("user robot\ntopic readwrite allowed/#\n")
    with Mosquitto(run_dir=tmp_path / "m", port=free_port(), users={"robot": "right"}, acl_file=acl) as locked:
        bad, _ = ours(options(locked.port, username="robot", password="wrong"), start=False)
        with pytest.raises(MqttRefused) as refused:
            bad.start()
        assert refused.value.code in (0x86, 0x87)  # Mosquitto 2 answers a bad password with 0x87
        assert f"mqtt://127.0.0.1:{locked.port}" in str(refused.value)
        assert "password" in refused.value.fix and not bad.stats.connects
        good, inbox = ours(options(locked.port, username="robot", password="right"))
        try:
            good.subscribe(["allowed/#"])
            done: list[tuple[bool, int]] = []
            good.publish("forbidden/x", b"no", on_done=lambda ok, code: done.append((ok, code)))
            good.publish("allowed/x", b"yes", on_done=lambda ok, code: done.append((ok, code)))
            assert wait_for(lambda: len(done) == 2 and inbox.payloads() == [b"yes"], WAIT), done
            assert done == [(False, 0x87), (True, 0)] and good.stats.failed == 1
        finally:
            good.close()


def test_subscribe_refusal_names_each_filter() -> None:
    """A SUBACK refusing one filter of several: SubscribeRefused names that filter and the reason."""

    def script(conn: FakeConn, _index: int) -> None:
        conn.accept()
        _, sub = conn.packet()
        conn.sock.sendall(mqtt5.SubAckPacket(sub.packet_id, [mqtt5.SubAckReasonCode(1), mqtt5.SubAckReasonCode(0x87)],
                                             reason_str="acl").write())
        conn.until_closed()

    fake = FakeBroker(script)
    client, _ = ours(options(fake.port))
    try:
        with pytest.raises(SubscribeRefused) as denied:
            client.subscribe(["ok/#", "secret/#"])
        assert list(denied.value.refused) == ["secret/#"]
        assert "0x87 NOT_AUTHORIZED ('acl')" in str(denied.value) and f"127.0.0.1:{fake.port}" in str(denied.value)
    finally:
        client.close()
        fake.close()


def test_oversized_packets_refused_both_ways(tmp_path: Path) -> None:
    """Outgoing over the broker's Maximum Packet Size: PacketTooLarge, counted, nothing sent, still connected;
    incoming over ours: the broker does not send it (the next message still arrives)."""
    with TunedMosquitto(run_dir=tmp_path / "m", port=free_port(), extra=["max_packet_size 2048"]) as tuned:
        peer = Peer(tuned.port)
        peer.subscribe("big/#")
        client, inbox = ours(options(tuned.port, max_packet_size=1024))
        try:
            with pytest.raises(PacketTooLarge, match="at most 2048"):
                client.publish("big/out", b"z" * 4000)
            assert client.stats.too_large_out == 1 and client.inflight == 0
            client.publish("big/out", b"small")
            assert wait_for(lambda: peer.payloads() == [b"small"], WAIT)
            client.subscribe(["big/in"])
            peer.publish("big/in", b"w" * 1500)  # under the broker's limit, over ours
            peer.publish("big/in", b"fits")
            assert wait_for(lambda: inbox.payloads() == [b"fits"], WAIT), inbox.payloads()
            assert client.stats.disconnects == 0
        finally:
            client.close()
            peer.close()


# --- a fake broker sending bad bytes -----------------------------------------------------------------


BAD = {
    # case: (bytes sent after a good PUBLISH, the DISCONNECT reason we must send, counted as malformed)
    "remaining length over 4 bytes": (b"\x30\xff\xff\xff\xff\x01", 0x81),
    "field past its packet": (bytes([0x30, 0x02, 0, 9]), 0x81),
    "topic not UTF-8": (bytes([0x32, 0x08, 0, 2, 0xFF, 0xFE, 0, 5, 0, 0x78]), 0x81),
    "unknown property": (bytes([0x30, 0x08, 0, 1, 0x61, 2, 0x7F, 0, 0x78, 0x79]), 0x81),
    "QoS 3": (bytes([0x36, 0x06, 0, 1, 0x61, 0, 1, 0]), 0x81),
    "over our maximum packet size": (_publish("m/big", b"B" * 2000, 9), 0x95),
    "a packet brokers never send": (mqtt5.SubscribePacket(3, [mqtt5.TopicFilter("x")]).write(), 0x82),
}


# The codec panics (pyo3 PanicException) on a string that is not UTF-8 and reports the UnicodeDecodeError as
# unraisable; the client turns the panic into Malformed, the warning is the codec's own noise.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("case", list(BAD))
def test_malformed_packet_from_the_broker(case: str) -> None:
    """A bad packet: the good one before it is delivered, we DISCONNECT with the right reason code, count it,
    name the endpoint and the problem, reconnect, and receive on the new connection."""
    bad, reason = BAD[case]

    def script(conn: FakeConn, index: int) -> None:
        conn.accept()
        if index == 0:
            conn.sock.sendall(_publish("m/t", b"before", 1) + bad)
            conn.until_closed()
        else:
            conn.sock.sendall(_publish("m/t", b"after", 2))
            conn.until_closed()

    fake = FakeBroker(script)
    client, inbox = ours(options(fake.port, max_packet_size=1024))
    try:
        assert wait_for(lambda: b"after" in inbox.payloads(), WAIT), (inbox.payloads(), client.stats)
        assert inbox.payloads() == [b"before", b"after"]
        assert client.stats.malformed == 1
        assert f"mqtt://127.0.0.1:{fake.port}: malformed packet from the broker" in (client.stats.last_error or "")
        disconnects = [int(p.reason_code) for _, p in fake.of(mqtt5.DisconnectPacket)]
        assert disconnects[:1] == [reason]
        assert wait_for(lambda: any(p.packet_id == 2 for _, p in fake.of(mqtt5.PubAckPacket)), WAIT)
    finally:
        client.close()
        fake.close()


def test_truncated_packet_then_close_reconnects() -> None:
    """Half a packet then a closed socket: a clear 'closed' error, a reconnect, nothing hangs."""

    def script(conn: FakeConn, index: int) -> None:
        conn.accept()
        conn.sock.sendall(_publish("m/t", b"half" * 100, 1)[:200] if index == 0 else _publish("m/t", b"whole", 2))
        if index == 0:
            conn.sock.close()
            return
        conn.until_closed()

    fake = FakeBroker(script)
    client, inbox = ours(options(fake.port))
    try:
        assert wait_for(lambda: inbox.payloads() == [b"whole"], WAIT), inbox.payloads()
        assert client.stats.connects == 2 and client.stats.malformed == 0
    finally:
        client.close()
        fake.close()


def test_unacked_publishes_resent_with_dup_in_order() -> None:
    """After a reconnect every unacknowledged QoS 1 PUBLISH goes out again, same packet ids, same order, DUP set."""

    def script(conn: FakeConn, index: int) -> None:
        conn.accept(session_present=index > 0)
        if index == 0:
            for _ in range(5):
                conn.packet()
            conn.sock.close()
            return
        for _ in range(5):
            _, packet = conn.packet()
            conn.sock.sendall(mqtt5.PubAckPacket(packet.packet_id).write())
        conn.until_closed()

    fake = FakeBroker(script)
    client, _ = ours(options(fake.port, clean_start=False, session_expiry_s=60))
    try:
        done: list[bool] = []
        for i in range(5):
            client.publish("r/x", b"%d" % i, on_done=lambda ok, _code: done.append(ok))
        assert wait_for(lambda: len(done) == 5, WAIT), client.stats
        publishes = fake.of(mqtt5.PublishPacket)
        first, again = publishes[:5], publishes[5:]
        assert [p.packet_id for _, p in again] == [p.packet_id for _, p in first]
        assert [p.payload for _, p in again] == [b"%d" % i for i in range(5)]
        assert not any(b & 0x08 for b, _ in first) and all(b & 0x08 for b, _ in again)
        assert all(p.duplicate for _, p in again)
    finally:
        client.close()
        fake.close()
