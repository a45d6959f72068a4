"""A loopback TCP proxy that breaks the link on purpose: forwards, delays, drops every connection, cuts one
mid-stream after N bytes, holds the server's replies (a link that works one way), refuses new connections
for a while, or (MQTT) removes or changes single packets on their way to the broker. Threads, bounded, for
fault-injection tests."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["FaultProxy", "LinkFaults"]

_CHUNK = 65536
_MAX_LINKS = 64


@dataclass
class LinkFaults:
    """What the proxy does now: `delay_s` before each forwarded chunk, `cut_after` bytes (client -> server, per
    connection) before the connection is cut, `refuse` new connections, `blackhole` every byte (held, no reset),
    `hold_replies`: the server's bytes (held, no reset) while the client's still go through; `rewrite`: each MQTT
    packet from the client, whole, becomes what it returns (None: the packet is removed)."""

    delay_s: float = 0.0
    cut_after: int | None = None
    refuse: bool = False
    blackhole: bool = False
    hold_replies: bool = False
    rewrite: Callable[[bytes], bytes | None] | None = None
    rewrite_replies: Callable[[bytes], bytes | None] | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"accepted": 0, "refused": 0, "dropped": 0, "cut": 0})


class FaultProxy:
    """Listens on 127.0.0.1:`port` (0: a free one) and forwards each connection to 127.0.0.1:`target_port`."""

    def __init__(self, target_port: int, *, port: int = 0) -> None:
        self.target_port = target_port
        self.faults = LinkFaults()
        self._server = socket.create_server(("127.0.0.1", port))
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._holding: set[int] = set()  # ids of the links whose pipe is holding bytes (black hole in effect)
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    # --- faults ---------------------------------------------------------------------------------

    def drop(self) -> int:
        """Close every open connection at once (both sides see a reset); returns how many."""
        with self._lock:
            links, self._links = self._links, []
        for pair in links:
            _close(*pair)
        self.faults.counts["dropped"] += len(links)
        return len(links)

    def delay(self, seconds: float) -> None:
        """Hold each chunk `seconds` before forwarding it (0: no delay)."""
        self.faults.delay_s = seconds

    def cut_after(self, size: int | None) -> None:
        """Cut each connection once it has carried `size` more bytes towards the server (None: never)."""
        self.faults.cut_after = size

    def blackhole(self, on: bool, timeout_s: float = 10.0) -> None:
        """While `on`, forward nothing in either direction and close nothing, as a network partition does:
        bytes wait in the socket buffers and TCP flow control stalls the senders; off, they flow on. Turning it
        on returns once every open link holds (at most `timeout_s`), so nothing passes after the call."""
        with self._lock:
            self._holding.clear()
            self.faults.blackhole = on
        deadline = time.monotonic() + timeout_s
        while on and time.monotonic() < deadline:
            with self._lock:
                open_links = {id(client) for client, _server in self._links}
                if open_links <= self._holding:
                    return
            time.sleep(0.01)

    def hold_replies(self, on: bool) -> None:
        """While `on`, forward the client's bytes but not the server's (held in the socket buffers): a link that
        works one way, so what the server received is never acknowledged to the client if the link then drops."""
        self.faults.hold_replies = on

    def rewrite_mqtt(self, rewrite: Callable[[bytes], bytes | None] | None) -> None:
        """From now on, each MQTT packet the client sends (fixed header, remaining length, body) is cut out of the
        byte stream and replaced by `rewrite(packet)`; None removes it, and a removed QoS 1 PUBLISH is
        acknowledged to the client by the proxy (a broker that took the message and lost it: a full queue), other
        bytes change it (a payload corrupted on the way). None: forward as is."""
        self.faults.rewrite = rewrite

    def rewrite_mqtt_replies(self, rewrite: Callable[[bytes], bytes | None] | None) -> None:
        """From now on, each MQTT packet the broker sends is replaced by `rewrite(packet)`; None removes it, with
        nothing in its place (a PUBACK lost on the way back: the client never hears of its publish). None: as is."""
        self.faults.rewrite_replies = rewrite

    def refuse(self, on: bool) -> None:
        """Refuse (accept and close at once) new connections while `on`; open ones are not touched."""
        self.faults.refuse = on

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.faults.counts)

    # --- forwarding -----------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                full = len(self._links) >= _MAX_LINKS
            if self.faults.refuse or full:
                self.faults.counts["refused"] += 1
                _close(client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                self.faults.counts["refused"] += 1
                _close(client)
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(None)
            self.faults.counts["accepted"] += 1
            with self._lock:
                self._links.append((client, server))
            thread = threading.Thread(target=self._pipe, args=(client, server), name="proxy-link", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _pipe(self, client: socket.socket, server: socket.socket) -> None:
        """Both directions of one connection, until either side closes or a fault ends it."""
        upstream = 0
        pending = b""  # client bytes not yet forming a whole MQTT packet (while rewriting)
        replies = b""  # the same, of the server's bytes
        limit = self.faults.cut_after
        link = id(client)
        try:
            while not self._stop.is_set():
                if self._held(link):
                    continue
                ready, _, _ = select.select([client] if self.faults.hold_replies else [client, server], [], [], 0.2)
                for sock in ready:
                    data = sock.recv(_CHUNK)
                    if not data:
                        return
                    while self._held(link):  # read as the black hole began: held with the rest until it ends
                        pass
                    if self.faults.delay_s:
                        time.sleep(self.faults.delay_s)
                    if sock is client:
                        if limit is not None and upstream + len(data) > limit:
                            server.sendall(data[:max(0, limit - upstream)])
                            self.faults.counts["cut"] += 1
                            return
                        upstream += len(data)
                        if self.faults.rewrite is not None:
                            pending += data
                            data, pending, acks = _rewrite_packets(pending, self.faults.rewrite)
                            if acks:
                                client.sendall(acks)
                        server.sendall(data)
                    else:
                        if self.faults.rewrite_replies is not None:
                            replies += data
                            data, replies, _acks = _rewrite_packets(replies, self.faults.rewrite_replies,
                                                                    ack_removed=False)
                        client.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                if (client, server) in self._links:
                    self._links.remove((client, server))
                self._holding.discard(link)
            _close(client, server)

    def _held(self, link: int) -> bool:
        """True (after a short wait) while the black hole is on, with this link marked as holding."""
        with self._lock:
            if not self.faults.blackhole or self._stop.is_set():
                return False
            self._holding.add(link)
        time.sleep(0.02)
        return True

    def close(self) -> None:
        """Stop accepting, close every connection, join the threads (bounded)."""
        self._stop.set()
        _close(self._server)
        self.drop()
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)


def _rewrite_packets(data: bytes, rewrite: Callable[[bytes], bytes | None], *,
                     ack_removed: bool = True) -> tuple[bytes, bytes, bytes]:
    """The whole MQTT packets at the start of `data`, each through `rewrite`; the rest (an incomplete one); the
    PUBACKs (MQTT 5, success) of the QoS 1 PUBLISHes removed (when `ack_removed`)."""
    out, acks, pos = [], [], 0
    while pos + 2 <= len(data):
        length, shift, at = 0, 0, pos + 1
        while at < len(data) and at - pos <= 4:
            byte = data[at]
            length |= (byte & 0x7F) << shift
            shift += 7
            at += 1
            if not byte & 0x80:
                break
        else:
            break  # the remaining length itself is incomplete
        if at + length > len(data):
            break
        changed = rewrite(data[pos:at + length])
        if changed is not None:
            out.append(changed)
        elif ack_removed and data[pos] >> 4 == 3 and (data[pos] >> 1) & 3 == 1:  # QoS 1 PUBLISH: topic, packet id
            topic_end = at + 2 + int.from_bytes(data[at:at + 2], "big")
            acks.append(b"\x40\x02" + data[topic_end:topic_end + 2])
        pos = at + length
    return b"".join(out), data[pos:], b"".join(acks)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
