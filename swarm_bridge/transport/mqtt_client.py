"""An MQTT 5 client on the compiled `mqtt5` codec: standard-library sockets and `ssl`, one network thread.

Lifecycle: `MqttClient(options, on_message=...)` -> `start()` (first CONNACK or a typed error) ->
`subscribe(...)`, `unsubscribe(...)`, `publish(...)`, `ack(message)` (or `ack_all(messages)`) from any thread ->
`close()`.

The network thread owns the socket (non-blocking, TCP_NODELAY, TLS through `ssl.SSLContext`): it reads up to
1 MiB per call (with `read_gather_s`, at most one read per that interval while bytes keep coming) and decodes
every packet in it, calls `on_message` in arrival order, and writes whatever the
other threads queued (PUBLISHes, PUBACKs) joined into one send. Other threads append to the outgoing buffer and
wake the thread through a pipe (once per batch, not per packet); on a plain TCP socket with nothing queued, a
PUBLISH is written by the publishing thread itself, under the client's lock like every write, so a busy sender costs
the network thread no wake-up per publish (it still reads the PUBACKs).

Flow control: at most min(`max_inflight`, the broker's Receive Maximum) QoS 1 PUBLISHes await a PUBACK;
`publish` blocks while the window is full, up to its `timeout_s`, then raises `InflightFull` (timeout_s=0:
report at once, never block). Received QoS 1 messages are acked by the application (`ack`, or
`auto_ack=True`); PUBACKs leave in arrival order. After a reconnect every unacknowledged PUBLISH is sent
again, in order, with DUP set; a lost connection is retried with exponential backoff and jitter.

A PUBACK that never comes on a live connection (lost by the broker or on the way) would hold its record, and
the sender's window, until the next reconnect: MQTT allows a resend only after a reconnect (4.4), so once the
oldest PUBLISH has waited `ack_timeout_s` while later ones were acked, or no PUBACK came at all for that long,
the client drops the connection and resumes the session, resending it with DUP (counted in `ack_timeouts`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import mqtt5

from swarm_bridge.transport.link import LinkSettingError
from swarm_bridge.transport.mqtt_errors import (
    InflightFull,
    MqttDisconnected,
    MqttProtocolError,
    MqttRefused,
    MqttUnreachable,
    PacketTooLarge,
    SubscribeRefused,
    check_publish_qos,
    reason_text,
)
from swarm_bridge.transport.mqtt_window import AckOrder, Done, Inflight
from swarm_bridge.transport.mqtt_wire import Frames, Malformed, MalformedReason, set_duplicate

__all__ = ["LastWill", "Message", "MqttClient", "MqttOptions", "MqttStats", "tls_context"]

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 20
_PINGREQ = mqtt5.PingReqPacket().write()
# A PUBACK with reason Success and no properties: type 4 (0x40), remaining length 2, the packet id. MQTT 5
# (3.4.2.1) lets the reason code be left out when it is 0; this is what `mqtt5.PubAckPacket(pid).write()` gives.
_PUBACK = struct.Struct(">HH")
_PUBACK_HEAD = 0x4002

# CONNACK reason codes after which trying again cannot help: start() raises instead of retrying.
_FINAL_REFUSALS = {
    0x84: "use an MQTT 5 broker (Mosquitto >= 1.6)",
    0x85: "use a client id the broker accepts (letters and digits, at most 23 characters for strict brokers)",
    0x86: "check the user name and password (the broker's password_file)",
    0x87: "check the user name and password (Mosquitto 2 answers a wrong one with 0x87) and the broker's ACL",
    0x8A: "this client is banned by the broker",
    0x8C: "use an authentication method the broker supports",
}


def tls_context(ca_file: str | None, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context trusting `ca_file` (None: the system's CAs); with cert and key it is mTLS."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


@dataclass(frozen=True)
class LastWill:
    """What the broker publishes for us when we vanish without a DISCONNECT (after `delay_s`)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    delay_s: int = 0


@dataclass(frozen=True)
class MqttOptions:
    """How to reach the broker and which session to keep; every field is keyword-only at the call site."""

    host: str
    port: int
    client_id: str
    clean_start: bool = True
    session_expiry_s: int = 0
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    will: LastWill | None = None
    max_inflight: int = 1000
    receive_max: int = 1000
    max_packet_size: int | None = None
    connect_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    ack_timeout_s: float = 30.0  # a PUBACK overdue this long on a live connection: reconnect and resend (0: never)
    # After a read that brought bytes, the network thread waits this long before it reads again, so a busy
    # subscription is read in fewer, larger reads (a broker writes each PUBLISH on its own: one wake-up of the
    # thread per message otherwise); adds at most this to a message's latency and a PUBACK's. 0: read at once.
    read_gather_s: float = 0.0
    # The broker's Unix-domain socket on this machine (Mosquitto: `listener 0 <path>`): used instead of host:port,
    # with less kernel work per message than loopback TCP. Not with TLS.
    unix_socket: str | None = None

    def __post_init__(self) -> None:
        problems = [f"{name} must be > 0 (got {value})" for name, value in (
            ("max_inflight", self.max_inflight), ("receive_max", self.receive_max),
            ("connect_timeout_s", self.connect_timeout_s), ("reconnect_min_s", self.reconnect_min_s))
            if value <= 0]
        if not 0 <= self.read_gather_s <= 0.1:
            problems.append(f"read_gather_s must be 0..0.1 s (got {self.read_gather_s})")
        if self.ack_timeout_s < 0:
            problems.append(f"ack_timeout_s must be >= 0 (got {self.ack_timeout_s})")
        if not 0 <= self.keepalive_s <= 65535:
            problems.append(f"keepalive_s must be 0..65535 (got {self.keepalive_s})")
        if self.unix_socket is not None and self.tls is not None:
            problems.append("unix_socket and tls together (a Unix-domain socket stays on this machine: no TLS)")
        if self.receive_max > 65535:
            problems.append(f"receive_max must be <= 65535 (got {self.receive_max})")
        if self.reconnect_max_s < self.reconnect_min_s:
            problems.append("reconnect_max_s must be >= reconnect_min_s")
        if problems:
            raise LinkSettingError(f"MqttOptions for {self.host}:{self.port}", "; ".join(problems),
                                   "give each option a value in the range named (in the config that sets it)")

    @property
    def endpoint(self) -> str:
        if self.unix_socket is not None:
            return f"mqtt+unix://{self.unix_socket}"
        return f"mqtt{'s' if self.tls else ''}://{self.host}:{self.port}"


def _open(opts: MqttOptions) -> socket.socket:
    """A connected stream socket to the broker: its Unix-domain socket when given, else TCP with TCP_NODELAY."""
    if opts.unix_socket is None:
        sock = socket.create_connection((opts.host, opts.port), timeout=opts.connect_timeout_s)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if opts.unix_socket is None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        else:
            sock.settimeout(opts.connect_timeout_s)
            sock.connect(opts.unix_socket)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass
class MqttStats:
    """Counts of one client; updated under the client's lock."""

    sent: int = 0
    acked: int = 0
    failed: int = 0
    received: int = 0
    duplicates: int = 0
    resent: int = 0
    ack_timeouts: int = 0  # reconnects because a PUBACK was overdue on a live connection
    too_large_out: int = 0
    malformed: int = 0
    connects: int = 0
    disconnects: int = 0
    dropped_qos0: int = 0
    callback_errors: int = 0
    max_inflight_seen: int = 0
    last_error: str | None = field(default=None)


class Message:
    """One received PUBLISH; a QoS 1 message is acknowledged by passing it to `MqttClient.ack`."""

    __slots__ = ("_conn", "_ticket", "packet")

    def __init__(self, packet: Any, conn: int, ticket: list[int] | None) -> None:
        self.packet, self._conn, self._ticket = packet, conn, ticket

    @property
    def topic(self) -> str:
        return str(self.packet.topic)

    @property
    def payload(self) -> bytes:
        return bytes(self.packet.payload)

    @property
    def qos(self) -> int:
        return int(self.packet.qos)

    @property
    def retain(self) -> bool:
        return bool(self.packet.retain)

    @property
    def duplicate(self) -> bool:
        return bool(self.packet.duplicate)

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, {len(self.packet.payload)} B, qos={self.qos}, dup={self.duplicate})"


class _Broken(Exception):
    """The current connection is over; `error` says why (logged and kept in stats.last_error)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class MqttClient:
    """One MQTT 5 session with a broker, kept across reconnects; safe to use from several threads."""

    def __init__(self, options: MqttOptions, *, on_message: Callable[[Message], None] | None = None,
                 auto_ack: bool = False, on_connect: Callable[[bool], None] | None = None) -> None:
        """`on_message` runs on the network thread and must not block; `auto_ack` sends each QoS 1 PUBACK once
        it returns; `on_connect(session_present)` runs after every CONNACK accepted."""
        self.options = options
        self.endpoint = options.endpoint
        self.stats = MqttStats()
        self._on_message, self._auto_ack, self._on_connect = on_message, auto_ack, on_connect
        self._lock = threading.Lock()
        self._window_free = threading.Condition(self._lock)
        self._inflight = Inflight(options.max_inflight)
        self._acks = AckOrder()
        self._acked_seq = 0  # the latest (in sending order) PUBLISH acked on this connection
        self._last_ack = 0.0  # when the last PUBACK came (monotonic), or the connection began
        self._out: list[bytes] = []
        self._unsent = False  # the network thread holds bytes the socket did not take yet
        self._direct = False  # publishers may write to the socket themselves (plain TCP: no TLS state to share)
        self._sock: socket.socket | None = None
        self._conn = 0  # connection number, so an ack of a message from an older connection is not sent
        self._broker_max_packet: int | None = None
        self._keepalive = options.keepalive_s
        self._broker_qos, self._broker_retain = 1, True
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._first = threading.Event()
        self._first_error: Exception | None = None
        self._attempted = threading.Event()  # the first connection attempt is over, connected or not
        self._attempt_error: Exception | None = None
        self._subscriptions: dict[str, tuple[int, bool]] = {}  # filter -> (qos, retain as published)
        self._suback: dict[int, tuple[threading.Event, list[Any]]] = {}
        self._kicked = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._frames = Frames(options.max_packet_size)
        self._thread = threading.Thread(target=self._run, name=f"mqtt5 {self.endpoint}", daemon=True)

    # --- public API -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def start(self, *, wait: bool = True) -> None:
        """Start the network thread; with `wait`, return at the first CONNACK accepted or raise why not
        (`MqttRefused` for a refusal that retrying cannot fix, `MqttUnreachable` after connect_timeout_s)."""
        self._thread.start()
        if not wait:
            return
        if not self._first.wait(self.options.connect_timeout_s + 1.0) and not self._connected.is_set():
            self.close(disconnect=False)
            raise MqttUnreachable(self.endpoint, f"no CONNACK within {self.options.connect_timeout_s:g} s "
                                  f"({self.stats.last_error or 'no answer'})",
                                  "start the broker, or check host, port and TLS settings")
        if self._first_error is not None:
            self.close(disconnect=False)
            raise self._first_error

    def first_attempt(self, timeout_s: float) -> Exception | None:
        """After `start(wait=False)`: None once the first connection attempt got a CONNACK, else why it failed
        (a final `MqttRefused` stops the client; anything else is retried with backoff in the background)."""
        if not self._attempted.wait(timeout_s) and not self._connected.is_set():
            return MqttUnreachable(self.endpoint, f"no CONNACK within {timeout_s:g} s",
                                   "start the broker, or check host, port and TLS settings")
        return None if self._connected.is_set() else self._attempt_error

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def subscribe(self, filters: Sequence[str], *, qos: int = 1, timeout_s: float = 10.0,
                  retain_as_published: bool = True) -> list[int]:
        """Subscribe to several filters in one SUBSCRIBE (`$share/<group>/<filter>` for a shared one); the
        SUBACK's reason codes (granted QoS), or `SubscribeRefused` naming each refused filter. Kept across
        reconnects (re-sent when the broker has no session for us). `retain_as_published=False` (MQTT's own
        default): only messages from the broker's retained store arrive flagged `retain`."""
        if not self._connected.wait(timeout_s):
            raise MqttUnreachable(self.endpoint, f"not connected within {timeout_s:g} s to subscribe "
                                  f"{list(filters)}", "start the broker or check its address")
        codes, why = self._send_subscribe(list(filters), qos, retain_as_published, timeout_s)
        refused = {f: reason_text(c, why) for f, c in zip(filters, codes, strict=True) if c >= 0x80}
        with self._lock:
            self._subscriptions.update({f: (qos, retain_as_published)
                                        for f, c in zip(filters, codes, strict=True) if c < 0x80})
        if refused:
            raise SubscribeRefused(self.endpoint, refused)
        return codes

    def unsubscribe(self, filters: Sequence[str], *, timeout_s: float = 10.0) -> list[int]:
        """Remove filters from the session in one UNSUBSCRIBE (also ones an earlier run of a persistent session
        made); the UNSUBACK's reason codes (0x11: the session had no such subscription)."""
        if not self._connected.wait(timeout_s):
            raise MqttUnreachable(self.endpoint, f"not connected within {timeout_s:g} s to unsubscribe",
                                  "start the broker or check its address")
        with self._lock:
            for f in filters:
                self._subscriptions.pop(f, None)
        return self._request(lambda pid: mqtt5.UnsubscribePacket(pid, list(filters)).write(), list(filters),
                             timeout_s)[0]

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                content_type: str | None = None, user_properties: list[tuple[str, str]] | None = None,
                on_done: Done | None = None, timeout_s: float | None = None) -> None:
        """Queue one PUBLISH. QoS 1: held until its PUBACK (`on_done(delivered, reason)` then), re-sent after a
        reconnect; blocks while the in-flight window is full, up to `timeout_s` (None: no limit), then raises
        `InflightFull` (at once when called from a callback). QoS 0 while disconnected is dropped (counted in
        `dropped_qos0`)."""
        check_publish_qos(self.endpoint, qos)
        if qos > self._broker_qos or (retain and not self._broker_retain):
            raise LinkSettingError(self.endpoint, f"the broker supports QoS <= {self._broker_qos} and retain "
                                   f"{'on' if self._broker_retain else 'off'} (CONNACK); got qos={qos} "
                                   f"retain={retain}", "lower the route's qos or turn its retain off, or allow "
                                   "them in the broker's config (max_qos, retain_available)")
        with self._lock:
            if threading.current_thread() is self._thread:
                timeout_s = 0  # from a callback: waiting would stop the thread that reads the PUBACKs
            if qos == 1 and self._inflight.full and (timeout_s == 0 or not self._window_free.wait_for(
                    lambda: not self._inflight.full or self._closing.is_set(), timeout_s)):
                raise InflightFull(self.endpoint, self._inflight.limit)
            if self._closing.is_set():
                raise MqttDisconnected(self.endpoint, "publish after close()")
            pid = self._inflight.next_id() if qos == 1 else None
            packet = mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS(qos), retain=retain, packet_id=pid,
                                         content_type=content_type, user_properties=user_properties).write()
            limit = self._broker_max_packet
            if limit is not None and len(packet) > limit:
                self.stats.too_large_out += 1
                raise PacketTooLarge(self.endpoint, topic, len(packet), limit)
            online = self._sock is not None
            if pid is None:
                if not online:
                    self.stats.dropped_qos0 += 1
                    return
            else:
                self._inflight.add(pid, packet, sent=online, on_done=on_done, now=time.monotonic())
                self.stats.max_inflight_seen = max(self.stats.max_inflight_seen, len(self._inflight))
            self.stats.sent += 1
            if online:
                if self._direct and not self._out and not self._unsent:
                    packet = self._send_now(packet)
                    if not packet:
                        return
                self._out.append(packet)
                kick = not self._kicked
                self._kicked = True
            else:
                kick = False
        if kick:
            self._kick()

    def _send_now(self, packet: bytes) -> bytes:
        """With the lock, nothing queued before it, on a plain TCP socket: write `packet` from the caller's thread
        (no wake-up of the network thread per publish); what the socket did not take, for the network thread."""
        assert self._sock is not None
        try:
            sent = self._sock.send(packet)
        except (BlockingIOError, InterruptedError):
            return packet
        except OSError:  # the connection is going: the network thread sees it; the PUBLISH is resent after reconnect
            return b""
        return packet[sent:]

    def ack(self, message: Message) -> None:
        """Acknowledge a received QoS 1 message; its PUBACK leaves once every earlier message is acked too."""
        self.ack_all((message,))

    def ack_all(self, messages: Iterable[Message]) -> None:
        """Acknowledge several received messages at once: one lock, at most one wake-up of the network thread."""
        pack, head = _PUBACK.pack, _PUBACK_HEAD
        with self._lock:
            conn = self._conn
            # a message from an older connection: the broker redelivers it, its ack has no meaning now
            ready = self._acks.ack_many([m._ticket for m in messages if m._ticket is not None and m._conn == conn])
            if not ready:
                return
            self._out.append(b"".join([pack(head, pid) for pid in ready]))
            if self._kicked:
                return
            self._kicked = True
        self._kick()

    def close(self, *, disconnect: bool = True, send_will: bool = False, timeout_s: float = 5.0) -> None:
        """Stop: DISCONNECT (reason 0x04 with `send_will`, so the broker publishes the Last Will), then end
        the network thread; QoS 1 publishes still in flight get `on_done(False, 0x80)`."""
        if self._closing.is_set():
            return
        with self._lock:
            if disconnect and self._sock is not None and self._connected.is_set():
                reason = mqtt5.DisconnectReasonCode(0x04 if send_will else 0x00)
                self._out.append(mqtt5.DisconnectPacket(reason_code=reason).write())
            self._closing.set()
            self._window_free.notify_all()
        self._kick()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        with self._lock:
            lost = self._inflight.drain()
            self.stats.failed += len(lost)
        for pending in lost:
            self._call_done(pending.on_done, False, 0x80)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- network thread -----------------------------------------------------------------------------

    def _kick(self) -> None:
        with contextlib.suppress(OSError):  # pipe full (the thread is awake anyway) or closed (closing)
            os.write(self._wake_w, b"!")

    def _run(self) -> None:
        delay = self.options.reconnect_min_s
        while not self._closing.is_set():
            try:
                sock, early, bad = self._connect()
            except MqttRefused as exc:
                self._note_error(exc)
                self._attempt_failed(exc)
                if not self._first.is_set() and exc.code in _FINAL_REFUSALS:
                    self._first_error = exc
                    self._first.set()
                    return
            except (OSError, MqttProtocolError, MqttUnreachable) as exc:
                error = (exc if isinstance(exc, MqttProtocolError | MqttUnreachable)
                         else MqttUnreachable(self.endpoint, f"cannot connect: {exc}",
                                              "start the broker, or check host, port and TLS settings"))
                self._note_error(error)
                self._attempt_failed(error)
            else:
                delay = self.options.reconnect_min_s
                try:
                    self._serve(sock, early, bad)
                except _Broken as broken:
                    self._note_error(broken.error)
                except Exception as exc:  # a bug of ours must cost a reconnect, never the network thread
                    log.exception("%s: unexpected error on the network thread", self.endpoint)
                    self._note_error(MqttProtocolError(self.endpoint, f"internal error: {exc!r}",
                                                       "report it with the log; the client reconnected"))
                finally:
                    self._drop(sock)
            if self._closing.wait(delay * random.uniform(0.5, 1.0)):
                break
            delay = min(delay * 2, self.options.reconnect_max_s)

    def _attempt_failed(self, exc: Exception) -> None:
        if not self._attempted.is_set():
            self._attempt_error = exc
            self._attempted.set()

    def _note_error(self, exc: Exception) -> None:
        with self._lock:
            self.stats.last_error = str(exc)
        if self._connected.is_set() or not self._first.is_set():
            log.warning("%s", exc)
        else:
            log.debug("%s", exc)

    def _connect(self) -> tuple[socket.socket, list[Any], Malformed | None]:
        """Open the socket (TLS when configured), CONNECT, wait for CONNACK (blocking, connect_timeout_s);
        the socket and any packets that came right behind the CONNACK (a resumed session's backlog)."""
        opts = self.options
        deadline = time.monotonic() + opts.connect_timeout_s
        raw = _open(opts)
        sock: socket.socket = raw
        try:
            if opts.tls is not None:
                sock = opts.tls.wrap_socket(raw, server_hostname=opts.host)
            will = None
            if opts.will is not None:
                w = opts.will
                will = mqtt5.Will(w.topic, payload=w.payload, qos=mqtt5.QoS(w.qos), retain=w.retain,
                                  will_delay_interval=w.delay_s)
            connect = mqtt5.ConnectPacket(
                opts.client_id, username=opts.username,
                password=None if opts.password is None else opts.password.encode(),
                clean_start=opts.clean_start, will=will, keep_alive=opts.keepalive_s,
                session_expiry_interval=opts.session_expiry_s, receive_max=opts.receive_max,
                max_packet_size=opts.max_packet_size)
            sock.sendall(connect.write())
            connack, early, bad = self._read_connack(sock, deadline)
        except BaseException:
            sock.close()
            raise
        if int(connack.reason_code) >= 0x80:
            sock.close()
            code = int(connack.reason_code)
            raise MqttRefused(self.endpoint, code, connack.reason_str,
                              _FINAL_REFUSALS.get(code, "see the broker's log; the client retries"))
        self._accepted(sock, connack)
        return sock, early, bad

    def _read_connack(self, sock: socket.socket, deadline: float) -> tuple[Any, list[Any], Malformed | None]:
        frames = self._frames
        frames.reset()
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = sock.recv(65536)
            except TimeoutError:
                raise MqttUnreachable(self.endpoint, "no CONNACK in time", "check the broker is an MQTT broker "
                                      "and not overloaded") from None
            if not data:
                raise MqttUnreachable(self.endpoint, "connection closed before CONNACK",
                                      "check the port is the broker's MQTT listener (TLS or not) and its log")
            packets, bad = frames.feed(data)
            if bad is not None and not packets:
                raise MqttProtocolError(self.endpoint, f"bad CONNACK: {bad.problem}",
                                        "check the port is an MQTT 5 broker")
            if packets:
                packet = packets[0]
                if not isinstance(packet, mqtt5.ConnAckPacket):
                    raise MqttProtocolError(self.endpoint, f"expected CONNACK, got {type(packet).__name__}",
                                            "check the port is an MQTT 5 broker")
                return packet, packets[1:], bad

    def _accepted(self, sock: socket.socket, connack: Any) -> None:
        """A CONNACK that accepts us: adopt the broker's limits, queue what must be (re)sent, go online."""
        sock.setblocking(False)
        session = bool(connack.session_present)
        with self._lock:
            self._conn += 1
            self._acks.clear()
            self._out.clear()
            self._broker_max_packet = connack.max_packet_size
            self._broker_qos, self._broker_retain = int(connack.max_qos), bool(connack.retain_available)
            self._inflight.limit = max(1, min(self.options.max_inflight, connack.receive_max or 65535))
            if connack.server_keep_alive is not None:
                self._keepalive = int(connack.server_keep_alive)
            else:
                self._keepalive = self.options.keepalive_s
            if not session and self._subscriptions:
                by_kind: dict[tuple[int, bool], list[str]] = {}
                for f, kind in self._subscriptions.items():
                    by_kind.setdefault(kind, []).append(f)
                for (q, rap), filters in by_kind.items():
                    self._out.append(self._subscribe_packet(filters, q, rap, None))
            self._acked_seq, self._last_ack = 0, time.monotonic()
            for packet, was_sent in self._inflight.resend(self._last_ack):
                self._out.append(set_duplicate(packet) if was_sent else packet)
                self.stats.resent += was_sent
            self._sock, self._unsent = sock, bool(self._out)
            self._direct = not isinstance(sock, ssl.SSLSocket)
            self._connected.set()  # with _sock, under the lock: a publish sees both or neither
            self.stats.connects += 1
            self._window_free.notify_all()
        log.info("%s: connected (session %s, receive maximum %d, %d to resend)", self.endpoint,
                 "resumed" if session else "new", self._inflight.limit, len(self._inflight))
        self._first.set()
        self._attempted.set()
        if self._on_connect is not None:
            try:
                self._on_connect(session)
            except Exception:
                log.exception("%s: on_connect raised", self.endpoint)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = None
            was = self._connected.is_set()
            self._connected.clear()
            if was:
                self.stats.disconnects += 1
            for pid, (event, _) in list(self._suback.items()):
                del self._suback[pid]
                event.set()  # its subscribe() raises: no SUBACK on this connection
            self._inflight.release_all()
        self._frames.reset()
        with contextlib.suppress(OSError):
            sock.close()
        if was and self._closing.is_set():
            log.info("%s: closed", self.endpoint)
        elif was:
            log.warning("%s: disconnected; reconnecting with backoff", self.endpoint)  # why: logged just before

    def _serve(self, sock: socket.socket, early: list[Any], bad: Malformed | None) -> None:
        """Read, dispatch and write until the connection breaks or close() is called."""
        self._dispatch(sock, early)
        if bad is not None:
            self._refuse_malformed(sock, bad)
        keepalive = self._keepalive
        tick = min(1.0, keepalive / 4) if keepalive else 1.0
        last_rx = last_tx = busy_at = time.monotonic()
        ping_out = False
        pending = b""
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ, "sock")
        selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        wait = 0.0  # first round: send the resends and re-subscriptions queued by _accepted at once
        gather = self.options.read_gather_s
        try:
            while True:
                events = selector.select(wait)
                wait = tick
                now = time.monotonic()
                read = False
                for key, _mask in events:
                    if key.data == "wake":
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                    elif self._read(sock):
                        last_rx, ping_out, read = now, False, True
                with self._lock:  # writes hold the lock: publishers write to the socket too (_send_now)
                    self._kicked = False
                    if self._out:
                        pending += b"".join(self._out)
                        self._out.clear()
                    closing = self._closing.is_set()
                    if pending:
                        pending = self._write(sock, pending)
                        self._unsent = bool(pending)
                        last_tx = now
                        if pending:  # the socket takes no more now: the link is slow, not the broker
                            busy_at = now
                if closing and not pending:
                    return
                self._check_acks(now, busy_at)
                if keepalive:
                    if now - last_rx > 1.25 * keepalive:
                        raise _Broken(MqttDisconnected(self.endpoint, f"no answer from the broker for "
                                                       f"{now - last_rx:.1f} s (keep-alive {keepalive} s)"))
                    if not ping_out and (now - last_rx >= keepalive / 2 or now - last_tx >= keepalive / 2):
                        with self._lock:
                            pending = self._write(sock, pending + _PINGREQ)
                            self._unsent = bool(pending)
                        last_tx, ping_out = now, True
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
                if selector.get_key(sock).events != want:
                    selector.modify(sock, want, "sock")
                if read and gather:
                    time.sleep(gather)  # what arrives meanwhile is read in one go
        finally:
            selector.close()

    def _check_acks(self, now: float, busy_at: float) -> None:
        """A PUBACK this connection will not bring: drop the connection (`_Broken`) so the session resumes and the
        PUBLISH goes again with DUP, the only resend MQTT allows; counted in `stats.ack_timeouts`."""
        with self._lock:
            overdue = self._inflight.unanswered(now, self.options.ack_timeout_s, acked_seq=self._acked_seq,
                                                last_ack=self._last_ack, busy_at=busy_at)
            if overdue is None:
                return
            self.stats.ack_timeouts += 1
        pid, waited, later = overdue
        raise _Broken(MqttDisconnected(self.endpoint, f"no PUBACK for packet {pid} after {waited:.1f} s while "
                                       f"{'later publishes were acked' if later else 'the connection is up'} "
                                       f"(ack_timeout_s {self.options.ack_timeout_s:g}); reconnecting to send it "
                                       f"again (DUP), {self.stats.ack_timeouts} such times since start"))

    def _write(self, sock: socket.socket, data: bytes) -> bytes:
        """Send as much as the socket takes now; the rest, to send when it is writable again."""
        view = memoryview(data)
        try:
            while view:
                view = view[sock.send(view[:262144]):]
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            pass
        except OSError as exc:
            raise _Broken(MqttDisconnected(self.endpoint, f"send failed: {exc}")) from None
        return bytes(view)

    def _read(self, sock: socket.socket) -> bool:
        """Read what is there (many packets per call) and handle it; True if anything arrived."""
        try:
            data = sock.recv(_READ_SIZE)
            if isinstance(sock, ssl.SSLSocket):  # TLS hands out one record per recv: take every decrypted one
                more = [data]
                while sock.pending() and sum(map(len, more)) < _READ_SIZE:
                    more.append(sock.recv(_READ_SIZE))
                data = b"".join(more)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False
        except OSError as exc:
            raise _Broken(MqttDisconnected(self.endpoint, f"connection lost: {exc}")) from None
        if not data:
            raise _Broken(MqttDisconnected(self.endpoint, "the broker closed the connection"))
        packets, bad = self._frames.feed(data)
        self._dispatch(sock, packets)
        if bad is not None:
            self._refuse_malformed(sock, bad)
        return True

    def _dispatch(self, sock: socket.socket, packets: list[Any]) -> None:
        """Handle packets in order; each run of PUBLISHes together (one lock for all of them)."""
        run: list[Any] = []
        for packet in packets:
            kind = type(packet)
            if kind is _PUBLISH:
                run.append(packet)
                continue
            if run:
                self._on_publishes(run)
                run = []
            handler = _HANDLERS.get(kind)
            if handler is None:
                self._refuse_malformed(sock, Malformed(f"unexpected {kind.__name__} from a broker",
                                                       MalformedReason.PROTOCOL_ERROR))
            handler(self, packet)
        if run:
            self._on_publishes(run)

    def _refuse_malformed(self, sock: socket.socket, exc: Malformed) -> NoReturn:
        """Count it, tell the broker why (DISCONNECT with the reason code), drop the connection."""
        with self._lock:
            self.stats.malformed += 1
        with contextlib.suppress(OSError):
            sock.send(mqtt5.DisconnectPacket(reason_code=mqtt5.DisconnectReasonCode(int(exc.reason))).write())
        raise _Broken(MqttProtocolError(self.endpoint, f"malformed packet from the broker: {exc.problem}",
                                        "the client reconnects; report the broker's version and log"))

    # --- packet handlers (network thread) --------------------------------------------------------------

    def _on_publishes(self, packets: list[Any]) -> None:
        """PUBLISHes received in a row: tickets for the QoS 1 ones, then `on_message` for each in order (a QoS 2
        one breaks the connection after the ones before it were handed on)."""
        messages: list[Message] = []
        broken = None
        with self._lock:
            conn, received = self._conn, self._acks.received
            duplicates = 0
            for packet in packets:
                qos = int(packet.qos)
                if qos == 1:
                    messages.append(Message(packet, conn, received(packet.packet_id)))
                elif qos == 0:
                    messages.append(Message(packet, conn, None))
                else:
                    broken = _Broken(MqttProtocolError(self.endpoint, "QoS 2 PUBLISH on a QoS <= 1 subscription",
                                                       "report the broker's version"))
                    break
                duplicates += packet.duplicate
            self.stats.received += len(messages)
            self.stats.duplicates += duplicates
        on_message = self._on_message
        if on_message is not None:
            for message in messages:
                try:
                    on_message(message)
                except Exception:
                    with self._lock:
                        self.stats.callback_errors += 1
                    log.exception("%s: on_message raised for a message on %s", self.endpoint, message.packet.topic)
        if self._auto_ack:
            pack, head = _PUBACK.pack, _PUBACK_HEAD
            with self._lock:  # the network thread flushes after this read: no wake-up needed
                if conn == self._conn:
                    ack = self._acks.ack
                    for message in messages:
                        if message._ticket is not None:
                            self._out.extend([pack(head, pid) for pid in ack(message._ticket)])
        if broken is not None:
            raise broken

    def _on_puback(self, packet: Any) -> None:
        code = int(packet.reason_code)
        with self._lock:
            pending = self._inflight.acked(packet.packet_id)
            if pending is None:
                return
            self._acked_seq, self._last_ack = max(self._acked_seq, pending.seq), time.monotonic()
            if code < 0x80:
                self.stats.acked += 1
            else:
                self.stats.failed += 1
            self._window_free.notify()
        if code >= 0x80:
            log.warning("%s: PUBACK refused a publish: %s", self.endpoint, reason_text(code, packet.reason_str))
        self._call_done(pending.on_done, code < 0x80, code)

    def _call_done(self, on_done: Done | None, ok: bool, code: int) -> None:
        if on_done is None:
            return
        try:
            on_done(ok, code)
        except Exception:
            log.exception("%s: on_done raised", self.endpoint)

    def _on_suback(self, packet: Any) -> None:
        with self._lock:
            waiter = self._suback.pop(packet.packet_id, None)
            self._inflight.release(packet.packet_id)
        if waiter is not None:
            waiter[1].append(([int(c) for c in packet.reason_codes], packet.reason_str))
            waiter[0].set()
        for code in packet.reason_codes:
            if int(code) >= 0x80:
                log.warning("%s: SUBACK refused a filter: %s", self.endpoint, reason_text(int(code), packet.reason_str))

    def _on_pingresp(self, _packet: Any) -> None:
        pass  # any packet counts as an answer (last_rx)

    def _on_disconnect(self, packet: Any) -> None:
        code = int(packet.reason_code)
        raise _Broken(MqttDisconnected(self.endpoint, f"the broker disconnected us: "
                                       f"{reason_text(code, packet.reason_str)}", code))

    def _subscribe_packet(self, filters: list[str], qos: int, retain_as_published: bool, pid: int | None) -> bytes:
        if pid is None:  # a re-subscription after a reconnect: nobody waits for its SUBACK
            pid = self._inflight.next_id()
            self._inflight.reserve(pid)
        topic_filters = [mqtt5.TopicFilter(f, max_qos=mqtt5.QoS(qos), retain_as_published=retain_as_published)
                         for f in filters]
        return mqtt5.SubscribePacket(pid, topic_filters).write()

    def _send_subscribe(self, filters: list[str], qos: int, retain_as_published: bool,
                        timeout_s: float) -> tuple[list[int], str | None]:
        return self._request(lambda pid: self._subscribe_packet(filters, qos, retain_as_published, pid), filters,
                             timeout_s)

    def _request(self, packet: Callable[[int], bytes], filters: list[str],
                 timeout_s: float) -> tuple[list[int], str | None]:
        """Send a SUBSCRIBE or UNSUBSCRIBE made by `packet(packet id)` and wait for its SUBACK or UNSUBACK."""
        event, codes = threading.Event(), []  # type: tuple[threading.Event, list[Any]]
        with self._lock:
            pid = self._inflight.next_id()
            self._inflight.reserve(pid)
            self._suback[pid] = (event, codes)
            self._out.append(packet(pid))
            self._kicked = True
        self._kick()
        if not event.wait(timeout_s) or not codes:
            with self._lock:
                self._suback.pop(pid, None)
                self._inflight.release(pid)
            raise MqttUnreachable(self.endpoint, f"no answer within {timeout_s:g} s for {filters[:3]} "
                                  f"({len(filters)} filters)",
                                  "check the broker is up; subscribe again once connected")
        answer: tuple[list[int], str | None] = codes[0]  # (reason codes, reason string)
        return answer


_PUBLISH = mqtt5.PublishPacket
_HANDLERS: dict[type, Callable[[MqttClient, Any], None]] = {
    mqtt5.PubAckPacket: MqttClient._on_puback,
    mqtt5.SubAckPacket: MqttClient._on_suback,
    mqtt5.UnsubAckPacket: MqttClient._on_suback,  # reason codes below 0x80 (0x11: no such subscription)
    mqtt5.PingRespPacket: MqttClient._on_pingresp,
    mqtt5.DisconnectPacket: MqttClient._on_disconnect,
}
