"""A local Confluent-API schema registry: Apicurio Registry (Quarkus, Java 17+) run from its distribution."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from swarm_bridge.brokers.errors import BrokerError
from swarm_bridge.brokers.executables import find_java
from swarm_bridge.brokers.service import BrokerService

__all__ = ["APICURIO_VERSION", "CCOMPAT_PATH", "DEFAULT_APICURIO_DIR", "SchemaRegistryServer"]

# Must match <apicurio.version> in provision/registry/pom.xml (3.0.x: the newest line on Java 17).
APICURIO_VERSION = "3.0.9"
# Where provision/setup unpacks it: $SWARM_BRIDGE_CACHE or ~/.cache/swarm_bridge.
DEFAULT_APICURIO_DIR = (
    Path(os.environ.get("SWARM_BRIDGE_CACHE") or "~/.cache/swarm_bridge").expanduser() / f"apicurio-{APICURIO_VERSION}"
)
# The Confluent-compatible API of Apicurio Registry 3.x.
CCOMPAT_PATH = "/apis/ccompat/v7"
_PROBE_TIMEOUT_S = 1.0


class SchemaRegistryServer(BrokerService):
    """Apicurio Registry on `host:port`, speaking the Confluent schema-registry API at `url`.

    Storage: an H2 database file under `run_dir` (restarting on it keeps the schemas); log under
    `run_dir`. Distribution: `app_dir`, else $SWARM_BRIDGE_APICURIO, else DEFAULT_APICURIO_DIR (where
    provision/setup puts it). Java: `java`, else $JAVA_HOME/bin/java, else `java` on PATH.
    Ready when `GET <url>/subjects` answers 200. Its default compatibility level is NONE (Confluent's
    is BACKWARD): set one per subject or globally through the client.
    """

    name = "schema-registry"
    ready_timeout = 90.0
    stop_timeout = 20.0

    def __init__(
        self,
        *,
        run_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        app_dir: Path | None = None,
        java: str | None = None,
        heap: str = "384m",
    ) -> None:
        super().__init__(run_dir=run_dir, host=host)
        self.port = port
        env_dir = os.environ.get("SWARM_BRIDGE_APICURIO")
        self.app_dir = Path(app_dir or env_dir or DEFAULT_APICURIO_DIR).expanduser().resolve()
        self.java = java
        self.heap = heap

    @property
    def url(self) -> str:
        """The Confluent-API base URL, e.g. http://127.0.0.1:8081/apis/ccompat/v7."""
        return f"http://{self.host}:{self.port}{CCOMPAT_PATH}"

    @property
    def address(self) -> str:
        """Same as `url`."""
        return self.url

    @property
    def data_dir(self) -> Path:
        """The H2 database directory."""
        return self.run_dir / "schema-registry-data"

    @property
    def runner_jar(self) -> Path:
        """The runnable jar of the distribution (its lib/ beside it)."""
        return self.app_dir / f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"

    def _ports(self) -> Mapping[str, int]:
        return {"SchemaRegistryServer(port=...)": self.port}  # started by tests, not by the CLI

    def _prepare(self) -> list[str]:
        if not self.runner_jar.is_file() or not (self.app_dir / "lib").is_dir():
            raise BrokerError(
                self.name,
                f"Apicurio Registry {APICURIO_VERSION} not found in {self.app_dir} "
                f"(no {self.runner_jar.name} and lib/)",
                "run provision/setup (fetches it from Maven Central) or set SWARM_BRIDGE_APICURIO",
            )
        java = find_java(self.name, self.java)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / "schema-registry-tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        settings = {
            "quarkus.http.host": self.host,
            "quarkus.http.port": str(self.port),
            "quarkus.log.console.color": "false",
            "quarkus.banner.enabled": "false",
            "apicurio.datasource.url": f"jdbc:h2:file:{self.data_dir / 'registry'}",
            "apicurio.import.work-dir": str(tmp),
            "apicurio.storage.snapshot.location": str(tmp),
            "java.io.tmpdir": str(tmp),
        }
        return [
            java,
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            *[f"-D{key}={value}" for key, value in settings.items()],
            "-jar",
            str(self.runner_jar),
        ]


    def _ready(self) -> bool:
        request = urllib.request.Request(f"{self.url}/subjects", headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=_PROBE_TIMEOUT_S) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False
