"""A local Mosquitto broker with its own config, persistence and log in a run directory."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from swarm_bridge.brokers.errors import BrokerError, BrokerSettingError
from swarm_bridge.brokers.executables import find_executable
from swarm_bridge.brokers.ports import accepts
from swarm_bridge.brokers.service import BrokerService

__all__ = ["MAX_INFLIGHT_MESSAGES", "BrokerTls", "Mosquitto", "mqtt_connack"]

MAX_INFLIGHT_MESSAGES = 65535  # unacked QoS 1 per client, each way: the clients' Receive Maximum decides (see _config)

_FIX_MISSING = "run provision/setup, or apt-get install mosquitto (or set SWARM_BRIDGE_MOSQUITTO)"


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the CA that signs clients, the broker's certificate and key; mTLS when required."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_client_cert: bool = True


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
        self, *, run_dir: Path, port: int, host: str = "127.0.0.1", binary: str | None = None,
        tls: BrokerTls | None = None, users: Mapping[str, str] | None = None,
        acl_file: Path | None = None, identity_port: int | None = None, identity_tls: BrokerTls | None = None,
        password_file: Path | None = None, max_queued_messages: int = 100_000, sys_interval_s: int = 10,
        unix_socket: Path | None = None,
    ) -> None:
        """`tls`: listen with TLS (mTLS when it requires client certificates); `users`: user -> password,
        and anonymous clients are refused; `acl_file`: a Mosquitto ACL file (e.g. docker/mosquitto/acl)
        deciding who may publish and subscribe where; `identity_port` + `identity_tls`: a second, mTLS
        listener where the client certificate's CN is the user name (no password); `password_file`: a file
        made with mosquitto_passwd, instead of `users`; `max_queued_messages`: per client, beyond it the broker
        drops (counted in $SYS/broker/publish/messages/dropped, published every `sys_interval_s`); `unix_socket`:
        a second listener on this Unix-domain socket path for clients on the same machine (a hub's gateway)."""
        super().__init__(run_dir=run_dir, host=host)
        self.port = port
        self.binary = binary
        self.tls = tls
        self.users = dict(users or {})
        self.acl_file = None if acl_file is None else Path(acl_file).resolve()
        if users and password_file is not None:
            raise BrokerSettingError("mosquitto", "users and password_file exclude each other",
                                     "give either users (written to a password file here) or your own password_file")
        self.password_file = None if password_file is None else Path(password_file).resolve()
        if (identity_port is None) != (identity_tls is None):
            raise BrokerSettingError("mosquitto", "identity_port and identity_tls go together",
                                     "give both (a TLS listener with client certificates) or neither")
        self.identity_port = identity_port
        self.identity_tls = identity_tls
        self.max_queued_messages, self.sys_interval_s = max_queued_messages, sys_interval_s
        self.unix_socket = None if unix_socket is None else Path(unix_socket).resolve()
        if self.unix_socket is not None and len(os.fsencode(self.unix_socket)) > 107:
            raise BrokerSettingError("mosquitto", f"unix_socket {unix_socket} is longer than the 107 bytes a "
                                     "Unix-domain socket path may have", "give a shorter path, e.g. under /tmp or /run")

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
        ports = {"--mqtt-port": self.port}
        if self.identity_port is not None:
            ports["Mosquitto(identity_port=...)"] = self.identity_port  # no CLI option
        return ports

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
        if self.unix_socket is not None:
            self.unix_socket.parent.mkdir(parents=True, exist_ok=True)
            if self.unix_socket.is_socket():  # left by a broker that was killed: binding would fail
                self.unix_socket.unlink()
        if self.users:
            self._write_passwords(binary)
        for path, what in ((self.acl_file, "ACL file"), (self.password_file, "password file")):
            if path is not None and not path.is_file():
                raise BrokerError(self.name, f"{what} {path} not found", "pass an existing file (the project "
                                  "ships docker/mosquitto/acl; make passwords with mosquitto_passwd)")
        self.config_path.write_text(self._config(data_dir))
        return [binary, "-c", str(self.config_path)]

    def _config(self, data_dir: Path) -> str:
        return "\n".join(
            [
                "# Written by swarm_bridge.brokers.Mosquitto; rewritten at every start.",
                f"listener {self.port} {self.host}",
                *self._security(),
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
                # Mosquitto also caps what an MQTT 5 subscriber may hold unacked at this, whatever Receive Maximum
                # the client asked for: at 1000 the gateway (which acks once Kafka confirmed, ~25-50 ms under load)
                # was held to ~1000 / RTT msgs/s, and at Mosquitto's default 20 to ~1,000 msgs/s. 65535 (MQTT's
                # largest) leaves each client's own Receive Maximum in charge, both ways.
                f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
                f"max_queued_messages {self.max_queued_messages}",
                f"sys_interval {self.sys_interval_s}",
                "max_queued_bytes 0",
                # last: options written after a listener line belong to that listener
                *([] if self.unix_socket is None else [f"listener 0 {self.unix_socket}"]),
                "",
            ]
        )

    def _security(self) -> list[str]:
        lines = ["allow_anonymous false"] if self._locked else ["allow_anonymous true"]
        if self.users or self.password_file is not None:
            lines.append(f"password_file {self.password_file or self.run_dir / 'mosquitto.passwords'}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.tls is not None:
            lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}", f"keyfile {self.tls.key_file}",
                      f"require_certificate {'true' if self.tls.require_client_cert else 'false'}"]
        if self.identity_port is not None and self.identity_tls is not None:
            tls = self.identity_tls
            # Listener options follow their `listener` line; the global ones above apply to both listeners.
            lines += [f"listener {self.identity_port} {self.host}", f"cafile {tls.ca_file}",
                      f"certfile {tls.cert_file}", f"keyfile {tls.key_file}", "require_certificate true",
                      "use_identity_as_username true"]
        return lines

    @property
    def _locked(self) -> bool:
        """Anonymous clients refused: there are users, an ACL or certificate identities."""
        return bool(self.users) or any(x is not None for x in (self.password_file, self.acl_file, self.identity_port))

    def _write_passwords(self, binary: str) -> None:
        """The password file, hashed by mosquitto_passwd (beside the broker binary, or on PATH)."""
        tool = shutil.which("mosquitto_passwd") or str(Path(binary).with_name("mosquitto_passwd"))
        path = self.run_dir / "mosquitto.passwords"
        path.write_text("")
        for user, password in self.users.items():
            done = subprocess.run([tool, "-b", str(path), user, password], capture_output=True, text=True,
                                  timeout=30, check=False)
            if done.returncode != 0:
                raise BrokerError(self.name, f"mosquitto_passwd failed for user {user!r}: {done.stderr.strip()}",
                                  "install mosquitto (it ships mosquitto_passwd)")

    def _ready(self) -> bool:
        if self.tls is not None or self._locked:
            return accepts(self.host, self.port, timeout=1.0)  # an anonymous plain CONNECT would be refused
        return mqtt_connack(self.host, self.port)
