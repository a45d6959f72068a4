"""MQTT 5 uplink on paho-mqtt: persistent session, Last Will presence, TLS, reconnect with backoff.

Records are published with MQTT 5 properties (content type); each publish reports back through its
`on_done` once the broker acknowledged it (QoS 1/2) or it was written out (QoS 0).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.transport.link import Done, Inbound, LinkBusy, LinkError, LinkStats
from swarm_bridge.transport.mqtt_properties import PackedProperties

__all__ = ["NO_MATCHING_SUBSCRIBERS", "MqttLink", "MqttTls", "Presence"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MqttTls:
    """TLS to the broker: CA to trust, and a client certificate and key for mTLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class Presence:
    """A retained topic saying whether the robot is online; the Last Will says offline when it drops."""

    topic: str
    robot_id: str

    def payload(self, state: str, reason: str) -> bytes:
        return json.dumps({"robot_id": self.robot_id, "state": state, "reason": reason}).encode()


class MqttLink:
    """One paho client on its own network thread; `send` never blocks on the broker."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        connect_timeout_s: float = 10.0,
        content_type: str = "application/json",
        max_inflight: int = 1000,
        session_expiry_s: int = 3600,
        keepalive_s: int = 30,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        username: str | None = None,
        password: str | None = None,
        tls: MqttTls | None = None,
        presence: Presence | None = None,
        hold_unsubscribed: bool = False,
    ) -> None:
        """`hold_unsubscribed`: a record the broker acknowledged with "no matching subscribers" counts as not
        delivered (`on_done(False)`), so the outbox keeps it until a hub subscribes again."""
        self.endpoint = f"mqtt{'s' if tls else ''}://{host}:{port}"
        self.stats = LinkStats()
        self.on_inflight_lost: Callable[[], None] | None = None
        self._host, self._port, self._timeout, self._keepalive = host, port, connect_timeout_s, keepalive_s
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._presence = presence
        self._hold_unsubscribed = hold_unsubscribed
        self.unsubscribed = 0  # records the broker had no subscriber for (held when hold_unsubscribed)
        self._closing = False
        self._subscriptions: dict[str, Inbound] = {}
        self._described: dict[str, Properties] = {}
        self._retained: set[str] = set()
        self.inbound_errors = 0
        self._session_expiry_s = session_expiry_s
        self._done: dict[int, Done] = {}
        self._early: dict[int, tuple[bool, bool]] = {}  # (ok, unsubscribed) of acks that came before `send`
        self._done_lock = threading.Lock()  # never held while calling into paho
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(2 * max_inflight)  # bounded memory: beyond it, LinkBusy
        client.reconnect_delay_set(min_delay=max(1, round(reconnect_min_s)), max_delay=max(1, round(reconnect_max_s)))
        if username is not None:
            client.username_pw_set(username, password)
        if tls is not None:
            try:
                client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file,
                               cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as exc:
                raise LinkError(self.endpoint, f"TLS files unusable ({exc})",
                                "check uplink.tls ca_file/cert_file/key_file paths and formats") from None
        if presence is not None:
            will = Properties(PacketTypes.WILLMESSAGE)
            will.ContentType = "application/json"
            client.will_set(presence.topic, presence.payload("offline", "connection lost"), qos=1, retain=True,
                            properties=will)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        self._props = PackedProperties(content_type)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def connect(self, *, require: bool = True) -> None:
        """Connect and wait for CONNACK. Unreachable or refused: LinkError when `require`, else a warning
        and paho keeps retrying with backoff in the background."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        try:
            self._client.connect(self._host, self._port, keepalive=self._keepalive, clean_start=False,
                                 properties=props)
        except (OSError, ssl.SSLError) as exc:
            if require:
                raise LinkError(self.endpoint, f"cannot connect ({exc})",
                                "start the broker or fix uplink host/port") from None
            log.warning("%s: not reachable (%s); spooling until it is", self.endpoint, exc)
            self._client.connect_async(self._host, self._port, keepalive=self._keepalive, clean_start=False,
                                       properties=props)
        self._client.loop_start()
        deadline = time.monotonic() + self._timeout
        while not self._connected.wait(0.05):
            if self._refusal or time.monotonic() > deadline:
                problem = self._refusal or f"no CONNACK within {self._timeout:g} s"
                if not require and not self._refusal:
                    log.warning("%s: %s; spooling until it answers", self.endpoint, problem)
                    return
                self._client.loop_stop()
                raise LinkError(self.endpoint, problem, "check the broker is an MQTT 5 broker, reachable, and "
                                "accepts these credentials")

    def send(self, destination: str, key: bytes, payload: bytes, *, qos: int = 1, retain: bool | None = None,
             on_done: Done | None = None) -> None:
        """Publish `payload` on MQTT topic `destination` (the key is implied by the topic); `retain` None: as
        `describe` said for the destination."""
        if retain is None:
            retain = destination in self._retained
        info = self._client.publish(destination, payload, qos=qos, retain=retain,
                                    properties=self._described.get(destination, self._props))
        if info.rc == paho.MQTT_ERR_QUEUE_SIZE:
            raise LinkBusy(f"{self.endpoint}: paho queue full")
        self.stats.add(sent=1)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            self.stats.add(failed=1)
            log.warning("%s: publish to %s failed: %s", self.endpoint, destination, paho.error_string(info.rc))
            (on_done or _ignore)(False)
            return
        done = on_done or _ignore
        with self._done_lock:
            early = self._early.pop(info.mid, None)
            self._early.clear()  # only this publish's ack can be early; older entries are stale resends
            if early is None:
                self._done[info.mid] = done
        if early is not None:
            self._settle(done, *early)

    def describe(self, destination: str, *, content_type: str, user_properties: tuple[tuple[str, str], ...] = (),
                 retain: bool = False) -> None:
        """MQTT 5 properties for every record published on `destination` (content type, user properties), and
        whether the broker retains the last one (a late subscriber gets it at once)."""
        if retain:
            self._retained.add(destination)
        self._described[destination] = PackedProperties(content_type, user_properties)

    def subscribe(self, destination: str, on_record: Inbound) -> None:
        """Receive every message on MQTT topic `destination` at QoS 1; kept across reconnects."""
        self._subscriptions[destination] = on_record
        self._client.message_callback_add(destination, self._dispatch(on_record))
        if self.connected:
            self._client.subscribe(destination, qos=1)

    def service(self) -> None:
        """Nothing to do: paho's network thread runs on its own."""

    def flush(self, timeout: float) -> int:
        """Wait until every publish is acknowledged or `timeout` passes; returns how many remain."""
        deadline = time.monotonic() + timeout
        while self.stats.pending > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.stats.pending

    def close(self) -> None:
        """Say offline on the presence topic (a clean stop is not a lost connection), then disconnect."""
        if self._presence is not None and self.connected:
            info = self._client.publish(self._presence.topic, self._presence.payload("offline", "stopped"),
                                        qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: Any, _u: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._refusal = f"broker refused the connection: {reason}"
            return
        self._connected.set()
        if self._subscriptions:
            client.subscribe([(topic, 1) for topic in self._subscriptions])
        if self._presence is not None:
            client.publish(self._presence.topic, self._presence.payload("online", "connected"), qos=1, retain=True)
        log.info("%s: connected (session %s)", self.endpoint, "resumed" if flags.session_present else "new")

    def _dispatch(self, on_record: Inbound) -> Callable[[Any, Any, Any], None]:
        def deliver(_c: Any, _u: Any, message: Any) -> None:
            try:
                on_record(message.topic, None, bytes(message.payload))
            except Exception:  # a malformed message must never stop the network thread
                self.inbound_errors += 1
                log.exception("%s: handling a message on %s failed", self.endpoint, message.topic)

        return deliver

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        log.warning("%s: message on %s matches no subscription; ignored", self.endpoint, message.topic)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        with self._done_lock:
            lost = len(self._done)
            self._done.clear()
        if lost:
            self.stats.add(failed=lost)
        if was:
            level = logging.INFO if self._closing else logging.WARNING
            log.log(level, "%s: disconnected (%s); %d records in flight", self.endpoint, reason, lost)
        if lost and self.on_inflight_lost is not None:
            self.on_inflight_lost()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        unsubscribed = reason.value == NO_MATCHING_SUBSCRIBERS
        ok = not reason.is_failure and not (unsubscribed and self._hold_unsubscribed)
        with self._done_lock:
            on_done = self._done.pop(mid, None)
            if on_done is None:  # acked before `send` registered it (or presence, which nobody waits for)
                self._early[mid] = (ok, unsubscribed)
                return
        self._settle(on_done, ok, unsubscribed)

    def _settle(self, on_done: Done, ok: bool, unsubscribed: bool) -> None:
        if unsubscribed:
            self.unsubscribed += 1
            if self.unsubscribed == 1 or self.unsubscribed % 1000 == 0:
                log.warning("%s: the broker had no subscriber for %d of this robot's records so far (no hub "
                            "subscribed, e.g. after a broker restart); %s", self.endpoint, self.unsubscribed,
                            "holding them in the spool" if self._hold_unsubscribed else
                            "the broker dropped them (uplink.hold_unsubscribed: true keeps them)")
        self.stats.add(acked=1) if ok else self.stats.add(failed=1)
        on_done(ok)


NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason: accepted, but nobody was subscribed


def _ignore(_ok: bool) -> None:
    """The `on_done` of a caller that only reads the link's stats."""
