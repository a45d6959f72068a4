"""Brokers for the MQTT client tests: a Mosquitto with tuned limits, and a fake broker that sends bad bytes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mqtt5

from swarm_bridge.brokers import Mosquitto

WAIT = 30.0  # generous: a busy 2-core machine must not fail these


class TunedMosquitto(Mosquitto):
    """Mosquitto with extra mosquitto.conf lines (e.g. max_packet_size, max_inflight_messages)."""

    def __init__(self, *, extra: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.extra = extra

    def _config(self, data_dir: Path) -> str:
        return super()._config(data_dir) + "\n".join(self.extra) + "\n"


class FakeConn:
    """One accepted connection of the fake broker: read client packets, send raw bytes."""

    def __init__(self, sock: socket.socket, broker: FakeBroker) -> None:
        self.sock, self.broker, self.buf = sock, broker, b""
        sock.settimeout(WAIT)

    def packet(self) -> tuple[int, Any]:
        """(first byte, decoded packet) of the next client packet; (0, None) once the client closed."""
        while True:
            if self.buf:
                try:
                    packet, size = mqtt5.read(memoryview(self.buf))
                except IndexError:
                    pass
                else:
                    first, self.buf = self.buf[0], self.buf[size:]
                    self.broker.seen.append((first, packet))
                    return first, packet
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                return 0, None
            self.buf += data

    def until_closed(self) -> None:
        while self.packet()[1] is not None:
            pass

    def accept(self, **connack: Any) -> None:
        _, connect = self.packet()
        assert isinstance(connect, mqtt5.ConnectPacket), connect
        self.sock.sendall(mqtt5.ConnAckPacket(**connack).write())

    def accept_and_hold(self, **connack: Any) -> None:
        """CONNACK, then read (never ack) until the client goes."""
        self.accept(**connack)
        self.until_closed()


class FakeBroker:
    """A plain socket server: connection number i runs `script(conn, i)`; records every client packet."""

    def __init__(self, script: Callable[[FakeConn, int], None]) -> None:
        self.script = script
        self.seen: list[tuple[int, Any]] = []
        self.errors: list[BaseException] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.stop = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        index = 0
        while not self.stop.is_set():
            try:
                sock, _ = self.server.accept()
            except OSError:
                continue
            self.conns.append(sock)
            threading.Thread(target=self._serve, args=(sock, index), daemon=True).start()
            index += 1

    def _serve(self, sock: socket.socket, index: int) -> None:
        try:
            self.script(FakeConn(sock, self), index)
        except BaseException as exc:  # reported by close()
            self.errors.append(exc)

    def of(self, kind: type) -> list[tuple[int, Any]]:
        return [(first, p) for first, p in list(self.seen) if isinstance(p, kind)]

    def publishes(self) -> int:
        return len(self.of(mqtt5.PublishPacket))

    def close(self) -> None:
        self.stop.set()
        self.server.close()
        for sock in self.conns:
            sock.close()
        assert not self.errors, self.errors


def publish_packet(topic: str, payload: bytes, pid: int) -> bytes:
    return mqtt5.PublishPacket(topic, payload, qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=pid).write()
