"""A local single-node Kafka (KRaft, combined broker+controller) run from its jars on Java 17+."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path

from swarm_bridge.brokers.errors import BrokerError
from swarm_bridge.brokers.executables import find_java
from swarm_bridge.brokers.ports import free_port
from swarm_bridge.brokers.service import BrokerService

__all__ = ["DEFAULT_KAFKA_LIBS", "KAFKA_VERSION", "Kafka"]

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
    ) -> None:
        super().__init__(run_dir=run_dir, host=host)
        self.port = port
        self.controller_port = controller_port if controller_port is not None else free_port(host)
        while controller_port is None and self.controller_port == port:
            self.controller_port = free_port(host)
        env_libs = os.environ.get("SWARM_BRIDGE_KAFKA_LIBS")
        self.libs_dir = Path(libs_dir or env_libs or DEFAULT_KAFKA_LIBS).expanduser().resolve()
        self.java = java
        self.heap = heap

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

    def _ports(self) -> Mapping[str, int]:
        return {"--kafka-port": self.port, "--kafka-controller-port": self.controller_port}

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
        self._format_storage(java, classpath, log4j)
        return [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.config_path),
        ]


    def _server_config(self) -> str:
        h, port, cport = self.host, self.port, self.controller_port
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{h}:{cport}",
            "listeners": f"PLAINTEXT://{h}:{port},CONTROLLER://{h}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{h}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            # One partition per internal topic: a single node gains nothing from 50, and a restart
            # then reloads group offsets in well under a second instead of ~3 s.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "min.insync.replicas": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        lines = ["# Written by swarm_bridge.brokers.Kafka; rewritten at every start."]
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

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
        argv += ["format", "--ignore-formatted", "-t", _cluster_id(), "-c", str(self.config_path)]
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

        return kafka_answers(self.bootstrap)
