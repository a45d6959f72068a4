"""A local Mosquitto broker with its own config, persistence and log in a run directory."""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from swarm_bridge.brokers.executables import find_executable
from swarm_bridge.brokers.service import BrokerService

__all__ = ["Mosquitto", "mqtt_connack"]

_FIX_MISSING = "run provision/setup, or apt-get install mosquitto (or set SWARM_BRIDGE_MOSQUITTO)"


def mqtt_connack(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if an MQTT 3.1.1 CONNECT (clean session) to host:port gets CONNACK 'accepted'."""
    client_id = f"swarm-bridge-probe-{os.getpid()}".encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + len(client_id).to_bytes(2, "big") + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(bytes([0x10, len(body)]) + body)
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return False
                reply += chunk
            sock.sendall(b"\xe0\x00")
    except OSError:
        return False
    return reply[0] == 0x20 and reply[3] == 0


class Mosquitto(BrokerService):
    """Mosquitto listening on `host:port`, anonymous, config/data/log under `run_dir`.

    Executable: `binary`, else $SWARM_BRIDGE_MOSQUITTO, else `mosquitto` on PATH, else
    /usr/sbin/mosquitto. Ready when an MQTT CONNECT is accepted.
    """

    name = "mosquitto"
    ready_timeout = 10.0
    stop_timeout = 10.0

    def __init__(
        self, *, run_dir: Path, port: int, host: str = "127.0.0.1", binary: str | None = None
    ) -> None:
        super().__init__(run_dir=run_dir, host=host)
        self.port = port
        self.binary = binary

    @property
    def url(self) -> str:
        """The broker URL, e.g. mqtt://127.0.0.1:1883."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """Same as `url`."""
        return self.url

    @property
    def config_path(self) -> Path:
        """The generated mosquitto.conf."""
        return self.run_dir / "mosquitto.conf"

    def _ports(self) -> Mapping[str, int]:
        return {"--mqtt-port": self.port}

    def _prepare(self) -> list[str]:
        explicit, source = (self.binary, "the binary argument")
        if explicit is None:
            explicit, source = os.environ.get("SWARM_BRIDGE_MOSQUITTO"), "$SWARM_BRIDGE_MOSQUITTO"
        binary = find_executable(
            service=self.name,
            explicit=explicit,
            explicit_source=source,
            search=("mosquitto", "/usr/sbin/mosquitto"),
            fix=_FIX_MISSING,
        )
        data_dir = self.run_dir / "mosquitto-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config(data_dir))
        return [binary, "-c", str(self.config_path)]

    def _config(self, data_dir: Path) -> str:
        return "\n".join(
            [
                "# Written by swarm_bridge.brokers.Mosquitto; rewritten at every start.",
                f"listener {self.port} {self.host}",
                "allow_anonymous true",
                # Stay the current user when started as root (mosquitto would switch to 'mosquitto').
                f"user {getpass.getuser()}",
                "persistence true",
                f"persistence_location {data_dir}/",
                "log_dest stdout",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "log_type information",
                "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                "connection_messages true",
                "set_tcp_nodelay true",
                "max_inflight_messages 1000",
                "max_queued_messages 100000",
                "max_queued_bytes 0",
                "",
            ]
        )

    def _ready(self) -> bool:
        return mqtt_connack(self.host, self.port)
