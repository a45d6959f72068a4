"""The robot's MQTT 5 uplink on `MqttClient`: persistent session, Last Will presence, TLS, reconnect with backoff.

Records are published at QoS 1 with their stream's MQTT 5 properties (content type, user properties); each
publish reports back through its `on_done` once the broker acknowledged it. What is in flight when the
connection drops stays in the client's window and is sent again (DUP) after the reconnect, so nothing in
flight is lost and `on_inflight_lost` is never called; a full window is `LinkBusy` (the outbox spools).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from swarm_bridge.routing.presence import presence_payload
from swarm_bridge.transport.link import Done, Inbound, LinkBusy, LinkError, LinkStats
from swarm_bridge.transport.mqtt_client import LastWill, Message, MqttClient, MqttOptions, tls_context
from swarm_bridge.transport.mqtt_errors import (
    MqttDisconnected,
    MqttRefused,
    PacketTooLarge,
    SubscribeRefused,
    reason_text,
)
from swarm_bridge.transport.mqtt_wire import reason_name

__all__ = ["NO_MATCHING_SUBSCRIBERS", "MqttLink", "MqttTls", "PresenceTopic", "topic_matches"]

log = logging.getLogger(__name__)

NO_MATCHING_SUBSCRIBERS = 0x10  # MQTT 5 PUBACK reason: accepted, but nobody was subscribed
_PRESENCE_TYPE = "application/json"


@dataclass(frozen=True)
class MqttTls:
    """TLS to the broker: CA to trust, and a client certificate and key for mTLS."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True)
class PresenceTopic:
    """A retained topic saying whether the robot is online; the Last Will says offline when it drops."""

    topic: str
    robot_id: str

    def payload(self, state: str, reason: str) -> bytes:
        return presence_payload(self.robot_id, state, reason)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches an MQTT subscription filter (`+`, `#`, and `$share/<group>/` in front)."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2] if topic_filter.count("/") >= 2 else ""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # MQTT 4.7.2: wildcards at the front do not match $-topics
    levels, wanted = topic.split("/"), topic_filter.split("/")
    for index, part in enumerate(wanted):
        if part == "#":
            return True
        if index >= len(levels) or (part != "+" and part != levels[index]):
            return False
    return len(levels) == len(wanted)


class MqttLink:
    """One MQTT 5 session on its own network thread; `send` never blocks on the broker."""

    served = False  # acknowledgements come from the client's own network thread

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
        ack_timeout_s: float = 30.0,
        username: str | None = None,
        password: str | None = None,
        tls: MqttTls | None = None,
        presence: PresenceTopic | None = None,
        hold_unsubscribed: bool = False,
        settings: str = "uplink",
    ) -> None:
        """`hold_unsubscribed`: a record the broker acknowledged with "no matching subscribers" counts as not
        delivered (`on_done(False)`), so the outbox keeps it until a hub subscribes again; `settings`: the config
        section the errors' fixes name (`uplink` on a robot, `mqtt` for the site coordinator); `ack_timeout_s`: a
        PUBACK overdue this long on a live connection makes the client resume the session and resend (0: never)."""
        self.endpoint = f"mqtt{'s' if tls else ''}://{host}:{port}"
        self.stats = LinkStats()
        self.on_inflight_lost: Callable[[], None] | None = None  # never called: the client resends in-flight
        self.unsubscribed = 0  # records the broker had no subscriber for (held when hold_unsubscribed)
        self.inbound_errors = 0
        context = None
        if tls is not None:
            try:
                context = tls_context(tls.ca_file, tls.cert_file, tls.key_file)
            except (OSError, ssl.SSLError) as exc:
                raise LinkError(self.endpoint, f"TLS files unusable ({exc})",
                                f"check {settings}.tls ca_file/cert_file/key_file paths and formats") from None
        will = None
        if presence is not None:
            will = LastWill(presence.topic, presence.payload("offline", "connection lost"), qos=1, retain=True)
        self._options = MqttOptions(
            host=host, port=port, client_id=client_id, clean_start=False, session_expiry_s=session_expiry_s,
            keepalive_s=keepalive_s, username=username, password=password, tls=context, will=will,
            max_inflight=max_inflight, connect_timeout_s=connect_timeout_s, reconnect_min_s=reconnect_min_s,
            reconnect_max_s=reconnect_max_s, ack_timeout_s=ack_timeout_s)
        self._presence = presence
        self._settings = settings
        self._hold_unsubscribed = hold_unsubscribed
        self._content_type = content_type
        self._described: dict[str, tuple[str, list[tuple[str, str]] | None]] = {}
        self._retained: set[str] = set()
        self._handlers: dict[str, Inbound] = {}
        self._with_properties: set[str] = set()  # filters whose handler takes the user properties too
        self._unsubscribed_filters: set[str] = set()  # wanted, not yet granted (offline when asked)
        self._sub_lock = threading.Lock()
        self._subscribed = threading.Condition(self._sub_lock)  # notified when a SUBSCRIBE got its answer
        self._subscribing = 0  # SUBSCRIBEs awaiting their SUBACK
        self._busy = False  # the in-flight window is full: logged once per change, at most every 10 s
        self._busy_logged, self._busy_log_after = False, 0.0
        self.backpressure_episodes = 0
        self._client = MqttClient(self._options, on_message=self._on_message, auto_ack=True,
                                  on_connect=self._on_connect)

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def ack_timeouts(self) -> int:
        """Reconnects because the broker left a publish unacknowledged on a live connection (`ack_timeout_s`)."""
        return self._client.stats.ack_timeouts

    def connect(self, *, require: bool = True) -> None:
        """Connect and wait for the first attempt's CONNACK, then for the SUBACK of what `subscribe` asked
        before (nothing published meanwhile is missed). Refused: LinkError. Unreachable: LinkError when
        `require`, else a warning and the client keeps retrying with backoff in the background."""
        self._client.start(wait=False)
        problem = self._client.first_attempt(self._options.connect_timeout_s + 1.0)
        if problem is None:
            self._wait_subscribed(self._options.connect_timeout_s)
            return
        if isinstance(problem, MqttRefused):
            self._client.close(disconnect=False)
            human = reason_name(problem.code).replace("_", " ").capitalize()
            raise LinkError(self.endpoint, f"broker refused the connection: {human} "
                            f"({reason_text(problem.code, problem.reason_str)})", problem.fix)
        problem_text = problem.problem if isinstance(problem, LinkError) else str(problem)
        if require:
            self._client.close(disconnect=False)
            raise LinkError(self.endpoint, f"cannot connect ({problem_text})",
                            f"start the broker or fix {self._settings} host/port (and TLS settings)")
        log.warning("%s: not reachable (%s); spooling until it answers", self.endpoint, problem_text)

    def send(self, destination: str, key: bytes, payload: bytes, *, qos: int = 1, retain: bool | None = None,
             on_done: Done | None = None) -> None:
        """Publish `payload` on MQTT topic `destination` (the key is implied by the topic); `retain` None: as
        `describe` said for the destination."""
        done = on_done or _ignore
        content_type, user_properties = self._described.get(destination, (self._content_type, None))
        if qos == 0 and not self._client.connected:
            self.stats.add(sent=1, failed=1)
            done(False)
            return
        self.stats.add(sent=1)
        retained = destination in self._retained if retain is None else retain
        settle = self._settler(done, destination, retained) if qos else None
        try:
            self._client.publish(destination, payload, qos=qos, retain=retained, content_type=content_type,
                                 user_properties=user_properties, timeout_s=0, on_done=settle)
        except LinkBusy:
            self.stats.add(sent=-1)
            if not self._busy:
                self._backpressure_starts()
            raise
        except (PacketTooLarge, MqttDisconnected, ValueError) as exc:
            self.stats.add(failed=1)
            log.warning("%s: publish to %s failed: %s", self.endpoint, destination, exc)
            done(False)
            return
        if self._busy:
            self._busy = False
            if self._busy_logged:
                self._busy_logged = False
                log.info("%s: backpressure over: the in-flight window has room again", self.endpoint)
        if not qos:
            self.stats.add(acked=1)
            done(True)

    def _backpressure_starts(self) -> None:
        """Log a full window once per change, at most every 10 s (a broker's Receive Maximum of 20 fills often)."""
        self._busy = True
        self.backpressure_episodes += 1
        now = time.monotonic()
        if now >= self._busy_log_after:
            self._busy_logged, self._busy_log_after = True, now + 10.0
            log.warning("%s: backpressure: every slot of the in-flight window awaits its PUBACK; records wait in "
                        "the spool (%d times since start)", self.endpoint, self.backpressure_episodes)

    def describe(self, destination: str, *, content_type: str, user_properties: tuple[tuple[str, str], ...] = (),
                 retain: bool = False) -> None:
        """MQTT 5 properties for every record published on `destination` (content type, user properties), and
        whether the broker retains the last one (a late subscriber gets it at once)."""
        if retain:
            self._retained.add(destination)
        self._described[destination] = (content_type, list(user_properties) or None)

    def subscribe(self, destination: str, on_record: Inbound, *, with_properties: bool = False) -> None:
        """Receive every message on MQTT topic `destination` at QoS 1; kept across reconnects. `with_properties`:
        `on_record` takes the message's user properties too (e.g. the compression of its records)."""
        self._handlers[destination] = on_record
        if with_properties:
            self._with_properties.add(destination)
        with self._sub_lock:
            self._unsubscribed_filters.add(destination)
        if self.connected:
            self._subscribe_wanted()

    def service(self) -> None:
        """Nothing to do: the client's network thread runs on its own."""

    def flush(self, timeout: float) -> int:
        """Wait until every publish is acknowledged or `timeout` passes; returns how many remain."""
        deadline = time.monotonic() + timeout
        while self.stats.pending > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        return max(0, self.stats.pending)

    def close(self) -> None:
        """Say offline on the presence topic (a clean stop is not a lost connection), then disconnect."""
        if self._presence is not None and self.connected:
            answered = threading.Event()
            try:
                self._client.publish(self._presence.topic, self._presence.payload("offline", "stopped"), qos=1,
                                     retain=True, content_type=_PRESENCE_TYPE, timeout_s=2,
                                     on_done=lambda _ok, _code: answered.set())
                answered.wait(2)
            except (LinkError, LinkBusy, ValueError) as exc:
                log.warning("%s: could not say offline on %s: %s", self.endpoint, self._presence.topic, exc)
        self._client.close()

    # --- network thread ----------------------------------------------------------------------------------

    def _on_connect(self, _session_present: bool) -> None:
        if self._presence is not None:
            topic, payload = self._presence.topic, self._presence.payload("online", "connected")
            try:
                self._client.publish(topic, payload, qos=1, retain=True, content_type=_PRESENCE_TYPE)
            except LinkBusy:  # the window is full of resends: say it at QoS 0 rather than not at all
                self._client.publish(topic, payload, qos=0, retain=True, content_type=_PRESENCE_TYPE)
        with self._sub_lock:
            wanted = bool(self._unsubscribed_filters)
        if wanted:  # a SUBSCRIBE waits for its SUBACK, which this (network) thread reads: ask from another
            threading.Thread(target=self._subscribe_wanted, name=f"mqtt subscribe {self.endpoint}",
                             daemon=True).start()

    def _wait_subscribed(self, timeout_s: float) -> None:
        """Wait (up to `timeout_s`) until every filter asked for has had its SUBACK, granted or refused."""
        with self._sub_lock:
            if not self._subscribed.wait_for(lambda: not self._unsubscribed_filters and not self._subscribing,
                                             timeout_s):
                log.warning("%s: no SUBACK within %g s for %s; subscribing in the background", self.endpoint,
                            timeout_s, sorted(self._unsubscribed_filters) or "the filters asked for")

    def _subscribe_wanted(self) -> None:
        """Subscribe the filters asked for while offline (the client keeps granted ones across reconnects)."""
        with self._sub_lock:
            filters = sorted(self._unsubscribed_filters)
            self._unsubscribed_filters.clear()
            self._subscribing += bool(filters)
        if not filters:
            return
        try:
            self._client.subscribe(filters, qos=1)
        except SubscribeRefused as exc:
            log.error("%s", exc)
        except LinkError as exc:  # the connection went away meanwhile: again at the next connect
            log.info("%s: subscribing %s again at the next connect (%s)", self.endpoint, filters, exc.problem)
            with self._sub_lock:
                self._unsubscribed_filters.update(filters)
        finally:
            with self._sub_lock:
                self._subscribing -= 1
                self._subscribed.notify_all()

    def _on_message(self, message: Message) -> None:
        topic = message.topic
        topic_filter: str | None = topic if topic in self._handlers else None
        if topic_filter is None:
            topic_filter = next((f for f in self._handlers if topic_matches(f, topic)), None)
            if topic_filter is None:
                log.warning("%s: message on %s matches no subscription; ignored", self.endpoint, topic)
                return
        handler = self._handlers[topic_filter]
        try:
            if topic_filter in self._with_properties:
                handler(topic, None, message.payload, list(message.packet.user_properties or ()))
            else:
                handler(topic, None, message.payload)
        except Exception:  # a malformed message must never stop the network thread
            self.inbound_errors += 1
            log.exception("%s: handling a message on %s failed", self.endpoint, topic)

    def _settler(self, done: Done, destination: str, retained: bool) -> Callable[[bool, int], None]:
        """A QoS 1 publish's PUBACK: 0x10 (no subscriber now) is counted, or held, unless the message is retained
        (the broker keeps it for later subscribers)."""
        def settle(ok: bool, code: int) -> None:
            if code == NO_MATCHING_SUBSCRIBERS and not retained:
                self._count_unsubscribed(destination)
                ok = ok and not self._hold_unsubscribed
            self.stats.add(acked=1) if ok else self.stats.add(failed=1)
            done(ok)

        return settle

    def _count_unsubscribed(self, destination: str) -> None:
        self.unsubscribed += 1
        if self.unsubscribed == 1 or self.unsubscribed % 1000 == 0:
            log.warning("%s: the broker had no subscriber for %d of this robot's records so far (this one on %s; "
                        "no hub subscribed, e.g. after a broker restart); %s", self.endpoint, self.unsubscribed,
                        destination,
                        "holding them in the spool" if self._hold_unsubscribed else
                        "the broker dropped them (uplink.hold_unsubscribed: true keeps them)")


def _ignore(_ok: bool) -> None:
    """The `on_done` of a caller that only reads the link's stats."""
