"""A local single-node Kafka (KRaft, combined broker+controller) run from its jars on Java 17+."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from swarm_bridge.brokers.errors import BrokerError, BrokerSettingError
from swarm_bridge.brokers.executables import find_java
from swarm_bridge.brokers.jvm import COLLECTOR_OPTION
from swarm_bridge.brokers.mosquitto import BrokerTls
from swarm_bridge.brokers.ports import free_port
from swarm_bridge.brokers.process import at_once
from swarm_bridge.brokers.service import BrokerService

__all__ = ["DEFAULT_KAFKA_LIBS", "KAFKA_VERSION", "Kafka", "KafkaBrokerSecurity", "KafkaCluster"]

JOIN_TIMEOUT_S = 60.0  # a cluster's nodes all in its metadata within this, after each listens

# Must match <kafka.version> in provision/kafka/pom.xml (a test checks it).
KAFKA_VERSION = "4.1.1"
# Where provision/setup puts the broker classpath: $SWARM_BRIDGE_CACHE or ~/.cache/swarm_bridge.
DEFAULT_KAFKA_LIBS = (
    Path(os.environ.get("SWARM_BRIDGE_CACHE") or "~/.cache/swarm_bridge").expanduser() / f"kafka-{KAFKA_VERSION}/libs"
)
_STARTED = "Kafka Server started"
_FORMAT_TIMEOUT_S = 120.0

# Loggers that flood a test log at INFO; everything else logs at INFO.
_QUIET_LOGGERS = (
    "kafka.request.logger",
    "org.apache.kafka.common.config.AbstractConfig",
    "org.apache.kafka.common.utils.AppInfoParser",
    "org.apache.kafka.common.metrics",
)


_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_SCRAM_ITERATIONS = 8192
_SCRAM_HASH = {"SCRAM-SHA-512": "sha512", "SCRAM-SHA-256": "sha256"}


@dataclass(frozen=True)
class KafkaBrokerSecurity:
    """SASL/SCRAM on the client listener, users created at format time, optionally broker ACLs.

    `admin_user` is the super user (and the broker's own inter-broker login); `users` maps the other
    principals to their passwords. With `acls`, KRaft's StandardAuthorizer refuses whatever no ACL allows.
    Passwords reach Kafka only as salted SCRAM credentials and in the 0600 server.properties (inter-broker).
    """

    admin_user: str
    admin_password: str = field(repr=False)
    users: Mapping[str, str] = field(default_factory=dict, repr=False)
    mechanism: str = "SCRAM-SHA-512"
    acls: bool = True

    def __post_init__(self) -> None:
        if self.mechanism not in _SCRAM_HASH:
            raise BrokerSettingError("kafka", f"SASL mechanism {self.mechanism!r} is not supported",
                                     f"choose one of {', '.join(_SCRAM_HASH)}")
        for user in (self.admin_user, *self.users):
            if not user or any(c in user for c in ',=[]"\\ '):
                raise BrokerSettingError("kafka", f"SCRAM user name {user!r} holds a character SCRAM cannot store",
                                         "use letters, digits, '_', '-', '.'")

    def client_settings(self, user: str | None = None) -> dict[str, str]:
        """librdkafka settings to log in as `user` (default the admin) over SASL_PLAINTEXT."""
        name = user or self.admin_user
        password = self.admin_password if name == self.admin_user else self.users[name]
        return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": self.mechanism,
                "sasl.username": name, "sasl.password": password}

    def scram_credentials(self) -> list[str]:
        """`--add-scram` arguments of kafka-storage format: salted, so no password is on a command line."""
        algorithm = _SCRAM_HASH[self.mechanism]
        out = []
        for user, password in {self.admin_user: self.admin_password, **self.users}.items():
            salt = os.urandom(16)
            salted = hashlib.pbkdf2_hmac(algorithm, password.encode(), salt, _SCRAM_ITERATIONS)
            out.append(f'{self.mechanism}=[name={user},iterations={_SCRAM_ITERATIONS},'
                       f'salt="{base64.b64encode(salt).decode()}",'
                       f'saltedpassword="{base64.b64encode(salted).decode()}"]')
        return out


def _cluster_id() -> str:
    """A Kafka-style cluster id: 16 random bytes, URL-safe base64 without padding, no leading '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class Kafka(BrokerService):
    """Kafka 4.x in KRaft mode: node 1 is broker and controller; data, config, log under `run_dir`.

    Restarting on the same `run_dir` keeps topics and messages (storage is formatted once).
    Jars: `libs_dir`, else $SWARM_BRIDGE_KAFKA_LIBS, else DEFAULT_KAFKA_LIBS (where provision/setup puts them).
    Java: `java`, else $JAVA_HOME/bin/java, else `java` on PATH.
    """

    name = "kafka"
    ready_timeout = 90.0
    stop_timeout = 30.0

    def __init__(
        self,
        *,
        run_dir: Path,
        port: int,
        controller_port: int | None = None,
        host: str = "127.0.0.1",
        libs_dir: Path | None = None,
        java: str | None = None,
        heap: str = "512m",
        security: KafkaBrokerSecurity | None = None,
        advertised_port: int | None = None,
        tls_port: int | None = None,
        tls: BrokerTls | None = None,
        node_id: int = 1,
        quorum: Mapping[int, int] | None = None,
        cluster_id: str | None = None,
        settings: Mapping[str, str] | None = None,
        jvm_options: Sequence[str] = (),
    ) -> None:
        """`security`: a SASL/SCRAM client listener (and ACLs) instead of PLAINTEXT; the controller
        listener stays PLAINTEXT on loopback. `advertised_port`: the port clients are told to connect to after
        bootstrap (e.g. a fault-injection proxy in front of `port`); default `port`. `tls_port` + `tls`: a
        second client listener with TLS (SSL, or SASL_SSL with `security`), client certificates required when
        `tls.require_client_cert`; the first listener stays as it is (and carries the broker's own traffic).
        `node_id`, `quorum` (node id -> controller port of every voter) and `cluster_id`: one node of a
        cluster (`KafkaCluster`); default a cluster of this node alone. `settings`: server.properties keys
        written over the project's own (benchmarks try broker settings with it). `jvm_options`: JVM flags after the
        project's own (one naming a collector, `-XX:+Use...GC`, replaces G1). Every stop-the-world pause is logged
        to `pause_log` (safepoints, epoch milliseconds; `jvm.pauses_in` reads it), as Kafka's own scripts log GC."""
        super().__init__(run_dir=run_dir, host=host)
        if (tls_port is None) != (tls is None):
            raise BrokerSettingError("kafka", "tls_port and tls go together",
                                     "give both (a second, TLS listener) or neither")
        self.security = security
        self.advertised_port = advertised_port
        self.tls_port, self.tls = tls_port, tls
        self.port = port
        self.controller_port = controller_port if controller_port is not None else free_port(host)
        while controller_port is None and self.controller_port == port:
            self.controller_port = free_port(host)
        env_libs = os.environ.get("SWARM_BRIDGE_KAFKA_LIBS")
        self.libs_dir = Path(libs_dir or env_libs or DEFAULT_KAFKA_LIBS).expanduser().resolve()
        self.java = java
        self.heap = heap
        self.node_id = node_id
        self.quorum = dict(quorum) if quorum is not None else {node_id: self.controller_port}
        self.cluster_id = cluster_id
        self.settings = dict(settings or {})
        self.jvm_options = tuple(jvm_options)

    @property
    def pause_log(self) -> Path:
        """The JVM's log of its stop-the-world pauses (`-Xlog:safepoint`)."""
        return self.run_dir / "jvm-pauses.log"

    @property
    def bootstrap(self) -> str:
        """The bootstrap.servers string, e.g. 127.0.0.1:9092."""
        return f"{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """Same as `bootstrap`."""
        return self.bootstrap

    @property
    def data_dir(self) -> Path:
        """The KRaft log directory (metadata and topic data)."""
        return self.run_dir / "kafka-data"

    @property
    def config_path(self) -> Path:
        """The generated server.properties."""
        return self.run_dir / "kafka-server.properties"

    @property
    def tls_bootstrap(self) -> str | None:
        """The bootstrap.servers string of the TLS listener, None without one."""
        return None if self.tls_port is None else f"{self.host}:{self.tls_port}"

    def _ports(self) -> Mapping[str, int]:
        others = len(self.quorum) - 1
        more = f": a cluster's nodes take it and the {others} after it" if others else ""
        ports = {f"--kafka-port{more}": self.port, f"--kafka-controller-port{more}": self.controller_port}
        if self.tls_port is not None:
            ports["Kafka(tls_port=...)"] = self.tls_port  # no CLI option: tests and demos set it
        return ports

    def _prepare(self) -> list[str]:
        if not any(self.libs_dir.glob("kafka_*.jar")):
            raise BrokerError(
                self.name,
                f"Kafka jars not found in {self.libs_dir}",
                "run provision/setup (fetches them from Maven Central) or set SWARM_BRIDGE_KAFKA_LIBS",
            )
        java = find_java(self.name, self.java)
        classpath = str(self.libs_dir / "*")
        log4j = self.run_dir / "kafka-log4j2.properties"
        log4j.write_text(self._log4j_config())
        self.config_path.write_text(self._server_config())
        self.config_path.chmod(0o600)  # with security it holds the inter-broker password
        self._format_storage(java, classpath, log4j)
        return [
            java,
            *self.jvm_flags(),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.config_path),
        ]

    def jvm_flags(self) -> list[str]:
        """Heap, collector (G1 unless `jvm_options` names another), the pause log, then `jvm_options`."""
        collector = () if any(COLLECTOR_OPTION.fullmatch(o) for o in self.jvm_options) else ("-XX:+UseG1GC",)
        return [f"-Xmx{self.heap}", f"-Xms{self.heap}", *collector,
                f"-Xlog:safepoint:file={self.pause_log}:timemillis:filecount=2,filesize=20m", *self.jvm_options]


    def _server_config(self) -> str:
        from swarm_bridge.transport.topics import replication_plan  # deferred: the one rule, pure

        h, port, cport = self.host, self.port, self.controller_port
        # Kafka's own topics (group offsets, transaction state) and auto-created ones get what the services'
        # topics get (transport/topics.py): on 3+ nodes 3 replicas, 2 in sync, so a node may die without
        # losing a committed offset or transaction, or stopping them; a lone node 1/1.
        plan = replication_plan(len(self.quorum))
        factor, insync = str(plan.replication_factor), str(plan.min_insync_replicas)
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(f"{node}@{h}:{port}" for node, port in sorted(self.quorum.items())),
            "listeners": f"PLAINTEXT://{h}:{port},CONTROLLER://{h}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{h}:{self.advertised_port or port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": factor,
            # One partition per internal topic: a test cluster gains nothing from 50, and a restart
            # then reloads group offsets in well under a second instead of ~3 s.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": factor,
            "transaction.state.log.min.isr": insync,
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": factor,
            "share.coordinator.state.topic.min.isr": insync,
            "share.coordinator.state.topic.num.partitions": "1",
            "default.replication.factor": factor,
            "min.insync.replicas": insync,
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.security is not None:
            settings |= self._security_config(self.security)
        if self.tls is not None:
            settings |= self._tls_config(settings, self.tls)
        settings |= self.settings
        lines = ["# Written by swarm_bridge.brokers.Kafka; rewritten at every start."]
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def _security_config(self, sec: KafkaBrokerSecurity) -> dict[str, str]:
        """The client listener speaks SASL_PLAINTEXT/SCRAM; the broker logs in to it as the admin."""
        h, port, cport = self.host, self.port, self.controller_port
        mech = sec.mechanism.lower()
        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{sec.admin_user}" '
                f'password="{sec.admin_password}";')
        settings = {
            "listeners": f"SASL_PLAINTEXT://{h}:{port},CONTROLLER://{h}:{cport}",
            "advertised.listeners": f"SASL_PLAINTEXT://{h}:{self.advertised_port or port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": sec.mechanism,
            "sasl.mechanism.inter.broker.protocol": sec.mechanism,
            f"listener.name.sasl_plaintext.{mech}.sasl.jaas.config": jaas,
        }
        if sec.acls:
            # The controller listener is PLAINTEXT on loopback: the broker talks to its own controller as
            # User:ANONYMOUS, which no client can be (the client listener requires a SCRAM login).
            settings |= {"authorizer.class.name": _AUTHORIZER,
                         "super.users": f"User:{sec.admin_user};User:ANONYMOUS",
                         "allow.everyone.if.no.acl.found": "false"}
        return settings

    def _tls_config(self, settings: Mapping[str, str], tls: BrokerTls) -> dict[str, str]:
        """A second client listener, SSL (or SASL_SSL with security), its key and certificate in one PEM file."""
        name = "SASL_SSL" if self.security is not None else "SSL"
        keystore = self.run_dir / "kafka-tls-keystore.pem"
        keystore.write_text(Path(tls.key_file).read_text() + Path(tls.cert_file).read_text())
        keystore.chmod(0o600)
        endpoint = f"{name}://{self.host}:{self.tls_port}"
        extra = {
            "listeners": f"{settings['listeners']},{endpoint}",
            "advertised.listeners": f"{settings['advertised.listeners']},{endpoint}",
            "listener.security.protocol.map": f"{settings['listener.security.protocol.map']},{name}:{name}",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(Path(tls.ca_file).resolve()),
            "ssl.client.auth": "required" if tls.require_client_cert else "none",
        }
        if self.security is not None:
            mech = self.security.mechanism.lower()
            extra[f"listener.name.sasl_ssl.{mech}.sasl.jaas.config"] = \
                settings[f"listener.name.sasl_plaintext.{mech}.sasl.jaas.config"]
        return extra

    @staticmethod
    def _log4j_config() -> str:
        lines = [
            "# Written by swarm_bridge.brokers.Kafka: INFO to stdout (the service log), WARN for noisy ones.",
            "status = warn",
            # Kafka logs its own shutdown; log4j's hook would stop logging before it ends.
            "shutdownHook = disable",
            "appender.out.type = Console",
            "appender.out.name = STDOUT",
            "appender.out.layout.type = PatternLayout",
            "appender.out.layout.pattern = [%d] %p %m (%c)%n",
            "rootLogger.level = INFO",
            "rootLogger.appenderRef.out.ref = STDOUT",
        ]
        for i, logger in enumerate(_QUIET_LOGGERS):
            lines += [f"logger.quiet{i}.name = {logger}", f"logger.quiet{i}.level = WARN"]
        return "\n".join(lines) + "\n"

    def _format_storage(self, java: str, classpath: str, log4j: Path) -> None:
        """Format the KRaft storage once; later starts reuse it (and so keep their data)."""
        if (self.data_dir / "meta.properties").exists():
            return
        argv = [java, f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath, "kafka.tools.StorageTool"]
        argv += ["format", "--ignore-formatted", "-t", self.cluster_id or _cluster_id(), "-c", str(self.config_path)]
        for credential in self.security.scram_credentials() if self.security is not None else []:
            argv += ["--add-scram", credential]
        try:
            done = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=_FORMAT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(
                self.name,
                f"storage format did not finish in {_FORMAT_TIMEOUT_S:.0f} s",
                "check the machine load and Java installation",
            ) from exc
        output = (done.stdout + done.stderr).decode(errors="replace")
        with self.log_path.open("a") as log:
            log.write(f"=== swarm_bridge: format storage (status {done.returncode})\n{output}")
        if done.returncode != 0:
            tail = "\n".join(output.splitlines()[-40:])
            raise BrokerError(
                self.name,
                f"storage format failed with status {done.returncode}",
                "read the output below; a Java older than 17 fails here",
                tail,
            )

    def _ready(self) -> bool:
        if self._process is None or _STARTED not in self._process.log_text():
            return False
        from swarm_bridge.transport.probes import kafka_answers  # deferred: only needed once, at startup

        settings = self.security.client_settings() if self.security is not None else None
        return kafka_answers(self.bootstrap, settings=settings)


class KafkaCluster:
    """`size` Kafka nodes on loopback, each broker and controller (a static KRaft quorum of all of them), one
    cluster id; node n's data, config and log under `run_dir`/node-<n>. The nodes start together (a quorum
    needs a majority up); `bootstrap` names them all. Kafka's own topics get 3 replicas, 2 in sync, from 3 nodes.

    Ports: client ports `port`, `port`+1, ... and controller ports `controller_port`, ... when given (the CLI's
    `--kafka-port`), else free ones. Restarting on the same `run_dir` and ports keeps topics and messages.
    Fault tests: `node(n).kill()` is a crash (SIGKILL), `node(n).start()` brings it back on its data.
    """

    def __init__(self, *, run_dir: Path, size: int = 3, host: str = "127.0.0.1", heap: str = "384m",
                 port: int | None = None, controller_port: int | None = None,
                 libs_dir: Path | None = None, java: str | None = None) -> None:
        if size < 1:
            raise BrokerSettingError("kafka cluster", f"size must be >= 1 (got {size})", "give at least one node")
        self.run_dir = Path(run_dir).resolve()
        self.host = host
        clients = _port_run(port, size, host, avoid=())
        controllers = _port_run(controller_port, size, host, avoid=clients)
        if set(clients) & set(controllers):
            raise BrokerSettingError("kafka cluster", f"client ports {clients} and controller ports {controllers} "
                                     "overlap", f"choose controller ports past {clients[-1]}")
        quorum = {node: controllers[node - 1] for node in range(1, size + 1)}
        cluster_id = self._formatted_cluster_id(size) or _cluster_id()
        self.nodes = [Kafka(run_dir=self.run_dir / f"node-{node}", port=clients[node - 1],
                            controller_port=quorum[node], host=host, heap=heap, libs_dir=libs_dir, java=java,
                            node_id=node, quorum=quorum, cluster_id=cluster_id) for node in quorum]

    def _formatted_cluster_id(self, size: int) -> str | None:
        """The cluster id a node of an earlier run was formatted with (a node formatted later must join it)."""
        for node in range(1, size + 1):
            meta = self.run_dir / f"node-{node}" / "kafka-data" / "meta.properties"
            if meta.exists():
                for line in meta.read_text().splitlines():
                    if line.startswith("cluster.id="):
                        return line.partition("=")[2].strip()
        return None

    @property
    def bootstrap(self) -> str:
        """bootstrap.servers naming every node."""
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def address(self) -> str:
        """Same as `bootstrap`."""
        return self.bootstrap

    def node(self, node_id: int) -> Kafka:
        """The node with KRaft node id `node_id` (1..size)."""
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise BrokerSettingError("kafka cluster", f"no node {node_id}", f"choose one of 1..{len(self.nodes)}")

    def start(self) -> None:
        """Start every node at once and return when all are ready; the first node's error (all stopped) if not.
        Every port is checked before any node starts; a node already running is left as it is."""
        for node in self.nodes:
            if not node.running:
                node.check_ports()
        errors = at_once(self.nodes, Kafka.start)
        if errors:
            self.stop()
            raise errors[0]
        self._wait_joined()

    def _wait_joined(self, timeout_s: float = JOIN_TIMEOUT_S) -> None:
        """Until the metadata names every node: a node listens before it has joined, and a topic made meanwhile
        would get fewer replicas than the cluster has nodes. BrokerError (all stopped) if one never joins."""
        from swarm_bridge.transport.probes import kafka_broker_count  # deferred: only needed at startup

        settings = self.nodes[0].security.client_settings() if self.nodes[0].security is not None else None
        deadline = time.monotonic() + timeout_s
        joined = 0
        while time.monotonic() < deadline:
            joined = kafka_broker_count(self.bootstrap, settings=settings)
            if joined >= len(self.nodes):
                return
            time.sleep(0.2)
        self.stop()
        raise BrokerError("kafka cluster", f"{joined} of {len(self.nodes)} nodes in the cluster's metadata after "
                          f"{timeout_s:g} s", "see each node's log: " + ", ".join(str(n.log_path) for n in self.nodes))

    def stop(self) -> None:
        """Stop every node at once (idempotent): one by one, the last ones would wait for a quorum long gone."""
        at_once(self.nodes, Kafka.stop)

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"KafkaCluster({self.bootstrap}, run_dir={str(self.run_dir)!r})"


def _port_run(first: int | None, size: int, host: str, avoid: Sequence[int]) -> list[int]:
    """`size` ports from `first` on, else `size` distinct free ones not in `avoid`."""
    if first is not None:
        if not 1 <= first <= 65536 - size:
            raise BrokerSettingError("kafka cluster", f"{size} ports from {first} do not fit below 65536",
                                     "choose a lower first port")
        return list(range(first, first + size))
    ports: list[int] = []
    while len(ports) < size:
        port = free_port(host)
        if port not in ports and port not in avoid:
            ports.append(port)
    return ports
