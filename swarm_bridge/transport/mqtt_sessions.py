"""Many MQTT 5 sessions driven by one loop in the caller's thread, on the same codec as `MqttClient`: for
simulators that hold hundreds of connections in one process, where a network thread per connection costs
more than the traffic.

Lifecycle: `MqttSessions(on_message=..., on_connect=...)` -> `open(options)` per session (CONNECT sent, the
CONNACK read by `pump`) -> `wait_connected()` -> `subscribe(...)`, `publish(...)` (queued, written by the
next `pump`) -> `pump(timeout_s)` often, from the same thread -> `close()`.

QoS 1: at most the broker's Receive Maximum PUBLISHes of a session await their PUBACK, the rest wait in
order; after a reconnect the unacknowledged ones are sent again with DUP. Received QoS 1 PUBLISHes are
acknowledged once `on_message` returns. `pump` also sends keep-alive PINGREQs, notices a dead broker
(1.25 x keep-alive without a packet) and reconnects with backoff; subscriptions are the caller's to renew in
`on_connect` when the broker kept no session. Plain TCP only (TLS: `MqttClient`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import mqtt5

from swarm_bridge.transport.link import LinkSettingError
from swarm_bridge.transport.mqtt_client import Message, MqttOptions, MqttStats
from swarm_bridge.transport.mqtt_errors import (
    MqttDisconnected,
    MqttProtocolError,
    MqttRefused,
    MqttUnreachable,
    PacketTooLarge,
    check_publish_qos,
    reason_text,
)
from swarm_bridge.transport.mqtt_window import Done, Inflight
from swarm_bridge.transport.mqtt_wire import Frames, Malformed, MalformedReason, set_duplicate

__all__ = ["MqttSession", "MqttSessions"]

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 18
_PINGREQ = mqtt5.PingReqPacket().write()
_QOS = {0: mqtt5.QoS(0), 1: mqtt5.QoS(1)}
_HOUSEKEEPING_S = 0.5  # keep-alive, CONNACK deadlines and reconnects are checked this often


class _Broken(Exception):
    """This session's connection is over; `error` says why."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class MqttSession:
    """One MQTT connection of an `MqttSessions`; `index` is its place in the order `open` was called."""

    __slots__ = ("_backlog", "_connect_by", "_delay", "_events", "_frames", "_inflight", "_keepalive", "_last_rx",
                 "_last_tx", "_max_packet", "_out", "_pending", "_ping_out", "_retry_at", "_sock", "connected",
                 "connects", "endpoint", "index", "options")

    def __init__(self, index: int, options: MqttOptions) -> None:
        self.index, self.options, self.endpoint = index, options, options.endpoint
        self.connected = False
        self.connects = 0
        self._sock: socket.socket | None = None
        self._out: list[bytes] = []  # packets queued since the last write
        self._pending = b""  # bytes the socket did not take yet
        self._events = 0  # what the selector waits for on the socket (read, and write while bytes are pending)
        self._frames = Frames(options.max_packet_size)
        self._inflight = Inflight(options.max_inflight)
        self._backlog: deque[tuple[str, bytes, bool, str | None, list[tuple[str, str]] | None, Done | None]] = deque()
        self._max_packet: int | None = None
        self._keepalive = options.keepalive_s
        self._last_rx = self._last_tx = self._connect_by = self._retry_at = 0.0
        self._ping_out = False
        self._delay = options.reconnect_min_s

    @property
    def unacked(self) -> int:
        """QoS 1 PUBLISHes not yet acknowledged: in flight and waiting for a free slot."""
        return len(self._inflight) + len(self._backlog)

    def __repr__(self) -> str:
        return f"MqttSession({self.options.client_id!r} -> {self.endpoint}, connected={self.connected})"


OnMessage = Callable[[MqttSession, Message], None]
OnConnect = Callable[[MqttSession, bool], None]


class MqttSessions:
    """Many MQTT 5 sessions on one selector, driven by `pump` from one thread (not thread-safe)."""

    def __init__(self, *, on_message: OnMessage | None = None, on_connect: OnConnect | None = None) -> None:
        """`on_message(session, message)` runs inside `pump`, its QoS 1 PUBACK queued once it returns;
        `on_connect(session, session_present)` after every CONNACK accepted (subscribe there)."""
        self.sessions: list[MqttSession] = []
        self.stats = MqttStats()
        self._on_message, self._on_connect = on_message, on_connect
        self._selector = selectors.DefaultSelector()
        self._dirty: set[MqttSession] = set()
        self._next_housekeeping = 0.0

    # --- public API -----------------------------------------------------------------------------------

    def open(self, options: MqttOptions) -> MqttSession:
        """A new session: TCP connect and CONNECT now (a failure is retried with backoff by `pump`)."""
        if options.tls is not None:
            raise LinkSettingError(f"MqttSessions: {options.client_id} -> {options.endpoint}",
                                   "TLS is not supported here", "use MqttClient for a TLS connection")
        session = MqttSession(len(self.sessions), options)
        self.sessions.append(session)
        self._connect(session)
        return session

    @property
    def unacked(self) -> int:
        return sum(s.unacked for s in self.sessions)

    def wait_connected(self, timeout_s: float) -> None:
        """Pump until every session is connected, or raise `MqttUnreachable` naming how many are not and why."""
        deadline = time.monotonic() + timeout_s
        while not all(s.connected for s in self.sessions):
            if time.monotonic() > deadline:
                missing = [s for s in self.sessions if not s.connected]
                raise MqttUnreachable(missing[0].endpoint, f"{len(missing)} of {len(self.sessions)} sessions not "
                                      f"connected within {timeout_s:g} s ({self.stats.last_error or 'no answer'})",
                                      "start the broker, or check host and port; fewer connections per process")
            self.pump(0.01)

    def subscribe(self, session: MqttSession, filters: Sequence[str], *, qos: int = 1,
                  retain_as_published: bool = True) -> None:
        """Queue one SUBSCRIBE for `filters`; a refusal in the SUBACK is logged and counted (stats.failed).
        `retain_as_published` as in `MqttClient.subscribe`."""
        if not session.connected:
            raise MqttDisconnected(session.endpoint, f"subscribe {list(filters)} while not connected (subscribe "
                                   "in on_connect)")
        pid = session._inflight.next_id()
        session._inflight.reserve(pid)
        topic_filters = [mqtt5.TopicFilter(f, max_qos=_QOS[qos], retain_as_published=retain_as_published)
                         for f in filters]
        self._queue(session, mqtt5.SubscribePacket(pid, topic_filters).write())

    def publish(self, session: MqttSession, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                content_type: str | None = None, user_properties: list[tuple[str, str]] | None = None,
                on_done: Done | None = None) -> None:
        """Queue one PUBLISH (written by the next `pump`). QoS 1 is held until its PUBACK (`on_done(delivered,
        reason)` then) and kept across reconnects; QoS 0 while disconnected is dropped (stats.dropped_qos0)."""
        check_publish_qos(session.endpoint, qos)
        self.stats.sent += 1
        if qos == 0:
            if not session.connected:
                self.stats.dropped_qos0 += 1
                return
            packet = mqtt5.PublishPacket(topic, payload, qos=_QOS[0], retain=retain, content_type=content_type,
                                         user_properties=user_properties).write()
            self._check_size(session, topic, packet)
            self._queue(session, packet)
            return
        if not session.connected or session._inflight.full or session._backlog:
            session._backlog.append((topic, payload, retain, content_type, user_properties, on_done))
            return
        self._send_qos1(session, topic, payload, retain, content_type, user_properties, on_done)

    def pump(self, timeout_s: float) -> None:
        """Write what is queued, wait up to `timeout_s` for the sockets, read and handle every packet, write
        the answers; every half second also keep-alive, deadlines and reconnects."""
        self._flush()
        for key, mask in self._selector.select(max(0.0, timeout_s)):
            session: MqttSession = key.data
            try:
                if mask & selectors.EVENT_READ:
                    self._read(session)
                if mask & selectors.EVENT_WRITE:
                    self._dirty.add(session)
            except _Broken as broken:
                self._broken(session, broken.error)
        self._flush()
        now = time.monotonic()
        if now >= self._next_housekeeping:
            self._next_housekeeping = now + _HOUSEKEEPING_S
            self._housekeeping(now)

    def close(self, *, send_will: bool = False) -> None:
        """DISCONNECT every session (reason 0x04 with `send_will`) and close the sockets; QoS 1 PUBLISHes not
        acknowledged get `on_done(False, 0x80)`."""
        reason = mqtt5.DisconnectReasonCode(0x04 if send_will else 0x00)
        disconnect = mqtt5.DisconnectPacket(reason_code=reason).write()
        for session in self.sessions:
            if session._sock is not None and session.connected:
                session._out.append(disconnect)
                self._dirty.add(session)
        self._flush()
        for session in self.sessions:
            if session._sock is not None:
                self._close_socket(session)
                session.connected = False
            lost = [p.on_done for p in session._inflight.drain()] + [item[5] for item in session._backlog]
            session._backlog.clear()
            self.stats.failed += len(lost)
            for on_done in lost:
                self._call_done(session, on_done, False, 0x80)
        self._selector.close()

    # --- sending --------------------------------------------------------------------------------------

    def _queue(self, session: MqttSession, packet: bytes) -> None:
        session._out.append(packet)
        self._dirty.add(session)

    def _check_size(self, session: MqttSession, topic: str, packet: bytes) -> None:
        limit = session._max_packet
        if limit is not None and len(packet) > limit:
            self.stats.too_large_out += 1
            raise PacketTooLarge(session.endpoint, topic, len(packet), limit)

    def _send_qos1(self, session: MqttSession, topic: str, payload: bytes, retain: bool, content_type: str | None,
                   user_properties: list[tuple[str, str]] | None, on_done: Done | None) -> None:
        pid = session._inflight.next_id()
        packet = mqtt5.PublishPacket(topic, payload, qos=_QOS[1], retain=retain, packet_id=pid,
                                     content_type=content_type, user_properties=user_properties).write()
        self._check_size(session, topic, packet)
        inflight = session._inflight
        inflight.add(pid, packet, sent=True, on_done=on_done)
        if len(inflight) > self.stats.max_inflight_seen:
            self.stats.max_inflight_seen = len(inflight)
        self._queue(session, packet)

    def _fill(self, session: MqttSession) -> None:
        """Move waiting PUBLISHes into the in-flight window while it has room."""
        backlog = session._backlog
        while backlog and not session._inflight.full:
            topic, payload, retain, content_type, user_properties, on_done = backlog.popleft()
            try:
                self._send_qos1(session, topic, payload, retain, content_type, user_properties, on_done)
            except PacketTooLarge as exc:
                log.warning("%s", exc)
                self.stats.failed += 1
                self._call_done(session, on_done, False, 0x95)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for session in dirty:
            sock = session._sock
            if sock is None:
                continue
            data = session._pending + b"".join(session._out) if session._out else session._pending
            session._out.clear()
            if data:
                try:
                    sent = sock.send(data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    self._broken(session, MqttDisconnected(session.endpoint, f"send failed: {exc}"))
                    continue
                session._pending = data[sent:]
                session._last_tx = time.monotonic()
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if session._pending else 0)
            if session._events != want:  # kept here: the selector's own lookup cost as much as the send
                self._selector.modify(sock, want, session)
                session._events = want

    # --- connecting -----------------------------------------------------------------------------------

    def _connect(self, session: MqttSession) -> None:
        """TCP connect (blocking, connect_timeout_s), send CONNECT, register; the CONNACK comes to `pump`."""
        opts = session.options
        try:
            sock = socket.create_connection((opts.host, opts.port), timeout=opts.connect_timeout_s)
        except OSError as exc:
            self._retry_later(session, MqttUnreachable(session.endpoint, f"cannot connect: {exc}",
                                                       "start the broker, or check host and port"))
            return
        will = None
        if opts.will is not None:
            w = opts.will
            will = mqtt5.Will(w.topic, payload=w.payload, qos=_QOS[w.qos], retain=w.retain,
                              will_delay_interval=w.delay_s)
        connect = mqtt5.ConnectPacket(
            opts.client_id, username=opts.username,
            password=None if opts.password is None else opts.password.encode(), clean_start=opts.clean_start,
            will=will, keep_alive=opts.keepalive_s, session_expiry_interval=opts.session_expiry_s,
            receive_max=opts.receive_max, max_packet_size=opts.max_packet_size)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(connect.write())
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            self._retry_later(session, MqttUnreachable(session.endpoint, f"CONNECT not sent: {exc}",
                                                       "check the broker's log"))
            return
        session._sock = sock
        session._frames.reset()
        session._pending = b""
        session._out.clear()
        session._connect_by = time.monotonic() + opts.connect_timeout_s
        self._selector.register(sock, selectors.EVENT_READ, session)
        session._events = selectors.EVENT_READ

    def _retry_later(self, session: MqttSession, error: Exception) -> None:
        self._note_error(error, warn=session.connects > 0 or session._retry_at == 0.0)
        session._retry_at = time.monotonic() + session._delay * random.uniform(0.5, 1.0)
        session._delay = min(session._delay * 2, session.options.reconnect_max_s)

    def _on_connack(self, session: MqttSession, packet: Any) -> None:
        code = int(packet.reason_code)
        if code >= 0x80:
            raise _Broken(MqttRefused(session.endpoint, code, packet.reason_str, "see the broker's log; retrying"))
        if session.connected:
            raise _Broken(MqttProtocolError(session.endpoint, "a second CONNACK", "report the broker's version"))
        session.connected = True
        session.connects += 1
        self.stats.connects += 1
        session._delay = session.options.reconnect_min_s
        session._max_packet = packet.max_packet_size
        session._inflight.limit = max(1, min(session.options.max_inflight, packet.receive_max or 65535))
        keepalive = packet.server_keep_alive
        session._keepalive = int(keepalive) if keepalive is not None else session.options.keepalive_s
        session._last_rx = session._last_tx = time.monotonic()
        session._ping_out = False
        for data, was_sent in session._inflight.resend():
            session._out.append(set_duplicate(data) if was_sent else data)
            self.stats.resent += was_sent
        self._dirty.add(session)
        self._fill(session)
        if self._on_connect is not None:
            try:
                self._on_connect(session, bool(packet.session_present))
            except Exception:
                self.stats.callback_errors += 1
                log.exception("%s: on_connect raised", session.endpoint)

    def _broken(self, session: MqttSession, error: Exception) -> None:
        """The connection is over: count it, forget partial packets and SUBSCRIBEs, retry with backoff."""
        if session.connected:
            self.stats.disconnects += 1
        session.connected = False
        if session._sock is not None:
            self._close_socket(session)
        session._inflight.release_all()
        session._frames.reset()
        session._pending = b""
        session._out.clear()
        self._dirty.discard(session)
        self._retry_later(session, error)

    def _close_socket(self, session: MqttSession) -> None:
        sock, session._sock = session._sock, None
        if sock is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        with contextlib.suppress(OSError):
            sock.close()

    def _housekeeping(self, now: float) -> None:
        """Keep-alive PINGREQs, a dead broker noticed, CONNACKs overdue, reconnects due."""
        for session in self.sessions:
            try:
                if session._sock is None:
                    if now >= session._retry_at:
                        self._connect(session)
                elif not session.connected:
                    if now > session._connect_by:
                        raise _Broken(MqttUnreachable(session.endpoint, "no CONNACK in time",
                                                      "check the broker is an MQTT 5 broker and not overloaded"))
                elif session._keepalive:
                    self._keep_alive(session, now)
            except _Broken as broken:
                self._broken(session, broken.error)

    def _keep_alive(self, session: MqttSession, now: float) -> None:
        keepalive = session._keepalive
        idle_rx = now - session._last_rx
        if idle_rx > 1.25 * keepalive:
            raise _Broken(MqttDisconnected(session.endpoint, f"no answer from the broker for {idle_rx:.1f} s "
                                           f"(keep-alive {keepalive} s)"))
        if not session._ping_out and (idle_rx >= keepalive / 2 or now - session._last_tx >= keepalive / 2):
            session._ping_out = True
            self._queue(session, _PINGREQ)

    def _note_error(self, error: Exception, *, warn: bool) -> None:
        self.stats.last_error = str(error)
        if warn:
            log.warning("%s", error)
        else:
            log.debug("%s", error)

    # --- receiving ------------------------------------------------------------------------------------

    def _read(self, session: MqttSession) -> None:
        sock = session._sock
        if sock is None:
            return
        try:
            data = sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            raise _Broken(MqttDisconnected(session.endpoint, f"connection lost: {exc}")) from None
        if not data:
            raise _Broken(MqttDisconnected(session.endpoint, "the broker closed the connection"))
        session._last_rx = time.monotonic()
        session._ping_out = False
        packets, bad = session._frames.feed(data)
        for packet in packets:
            handler = _HANDLERS.get(type(packet))
            if handler is None or (not session.connected and handler is not MqttSessions._on_connack):
                self._refuse(session, Malformed(f"unexpected {type(packet).__name__} from a broker"
                                                f"{'' if session.connected else ' before CONNACK'}",
                                                MalformedReason.PROTOCOL_ERROR))
            else:
                handler(self, session, packet)
        if bad is not None:
            self._refuse(session, bad)

    def _refuse(self, session: MqttSession, exc: Malformed) -> NoReturn:
        """Count a bad packet, tell the broker why (DISCONNECT with the reason code), drop the connection."""
        self.stats.malformed += 1
        if session._sock is not None:
            with contextlib.suppress(OSError):
                session._sock.send(mqtt5.DisconnectPacket(
                    reason_code=mqtt5.DisconnectReasonCode(int(exc.reason))).write())
        raise _Broken(MqttProtocolError(session.endpoint, f"malformed packet from the broker: {exc.problem}",
                                        "the session reconnects; report the broker's version and log"))

    def _on_publish(self, session: MqttSession, packet: Any) -> None:
        qos = int(packet.qos)
        if qos == 2:
            raise _Broken(MqttProtocolError(session.endpoint, "QoS 2 PUBLISH on a QoS <= 1 subscription",
                                            "report the broker's version"))
        self.stats.received += 1
        self.stats.duplicates += packet.duplicate
        if self._on_message is not None:
            try:
                self._on_message(session, Message(packet, 0, None))
            except Exception:
                self.stats.callback_errors += 1
                log.exception("%s: on_message raised for a message on %s", session.endpoint, packet.topic)
        if qos == 1:  # acked as it is handled: PUBACKs leave in arrival order
            self._queue(session, mqtt5.PubAckPacket(packet.packet_id).write())

    def _on_puback(self, session: MqttSession, packet: Any) -> None:
        pending = session._inflight.acked(packet.packet_id)
        if pending is None:
            return
        code = int(packet.reason_code)
        if code < 0x80:
            self.stats.acked += 1
        else:
            self.stats.failed += 1
            log.warning("%s: PUBACK refused a publish: %s", session.endpoint, reason_text(code, packet.reason_str))
        self._call_done(session, pending.on_done, code < 0x80, code)
        self._fill(session)

    def _on_suback(self, session: MqttSession, packet: Any) -> None:
        session._inflight.release(packet.packet_id)
        for code in packet.reason_codes:
            if int(code) >= 0x80:
                self.stats.failed += 1
                log.warning("%s: SUBACK refused a filter: %s", session.endpoint,
                            reason_text(int(code), packet.reason_str))

    def _on_pingresp(self, _session: MqttSession, _packet: Any) -> None:
        pass  # any packet counts as an answer (_last_rx)

    def _on_disconnect(self, session: MqttSession, packet: Any) -> None:
        code = int(packet.reason_code)
        raise _Broken(MqttDisconnected(session.endpoint, f"the broker disconnected us: "
                                       f"{reason_text(code, packet.reason_str)}", code))

    def _call_done(self, session: MqttSession, on_done: Done | None, ok: bool, code: int) -> None:
        if on_done is None:
            return
        try:
            on_done(ok, code)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("%s: on_done raised", session.endpoint)


_HANDLERS: dict[type, Callable[[MqttSessions, MqttSession, Any], None]] = {
    mqtt5.ConnAckPacket: MqttSessions._on_connack,
    mqtt5.PublishPacket: MqttSessions._on_publish,
    mqtt5.PubAckPacket: MqttSessions._on_puback,
    mqtt5.SubAckPacket: MqttSessions._on_suback,
    mqtt5.UnsubAckPacket: MqttSessions._on_pingresp,
    mqtt5.PingRespPacket: MqttSessions._on_pingresp,
    mqtt5.DisconnectPacket: MqttSessions._on_disconnect,
}
