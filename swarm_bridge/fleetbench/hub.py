"""The hub under test: one `swarm-bridge gateway` and one `swarm-bridge coordinator` process, started from
configs written for the run, their logs kept, their Prometheus metrics read between steps."""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from swarm_bridge.brokers import free_port
from swarm_bridge.brokers.process import ServiceProcess
from swarm_bridge.fleetbench.errors import BenchTimeout

__all__ = ["HubProcess", "coordinator_doc", "gateway_doc", "namespace_gateway", "scrape"]


def gateway_doc(*, fleet: str, mqtt_port: int, bootstrap: str, registry: Path, metrics_port: int) -> dict[str, Any]:
    """The gateway's config: the defaults (config/edge_gateway.yaml) on the bench's brokers, as one hub whose robots
    come from no other hub (`dedup.from_other_hubs: false`): every step starts a new run for all its robots at once,
    and with it on, each of their streams' first record made the gateway read the up topics back (measured at
    300 robots: ~93 read-backs, ~85,000 records and ~2.6 s of the gateway's thread at each step's start, on a hub
    with under 2% to spare). `--gateway-setting dedup.from_other_hubs=true` measures it so."""
    return {"gateway_id": "fleet_bench_gw", "fleet": fleet, "registry": str(registry), "metrics_port": metrics_port,
            "mqtt": {"port": mqtt_port, "share_group": "fleet_bench"},
            "kafka": {"bootstrap": bootstrap, "linger_ms": 10, "compression": "lz4"},
            "dedup": {"rebuild_records": 1000, "from_other_hubs": False}}


def namespace_gateway(doc: dict[str, Any], ns: str, tag: str) -> dict[str, Any]:
    """`doc` with its Kafka topics under `ns` (up, down, DLQ) and gateway id `<tag>_gw`: a run's own topics, so
    runs on one Kafka never read each other's records."""
    doc["gateway_id"] = f"{tag}_gw"
    doc["kafka"]["dlq_topic"] = f"{ns}.dlq"
    doc["kafka"]["prompt_topics"] = [f"{ns}.event.*"]  # the default's fleet.event.*: task status
    doc["up"] = [
        {"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}", "kafka_topic": ns + ".{channel}.{stream}",
         "where": {"channel": ["telemetry", "event", "state"]}, "key": "{robot_id}", "payload": "record"},
        {"mqtt": "{prefix}/{fleet}/{robot_id}/presence/status", "kafka_topic": f"{ns}.presence.status",
         "payload": "raw"}]
    doc["down"] = [{"kafka_topic": f"{ns}.command.task_command",
                    "mqtt": "{prefix}/{fleet}/{robot_id}/command/task_command", "qos": 1}]
    return doc


def coordinator_doc(*, fleet: str, kafka_port: int, registry: Path, metrics_port: int, shards: int,
                    capabilities: dict[str, list[str]]) -> dict[str, Any]:
    """The coordinator's config: default topics, the bench's Kafka and registry, one instance."""
    return {"fleet": fleet, "shards": shards, "registry": str(registry), "metrics_port": metrics_port,
            "kafka": {"port": kafka_port, "group": "fleet-bench-coordinator", "instance_id": "fleet-bench-coord"},
            "capabilities": capabilities,
            "tasks": {"accept_timeout_s": 30, "robot_offline_after_s": 10}}


class HubProcess:
    """A `swarm-bridge <command> --config <file>` child (a `ServiceProcess` logging to `<run_dir>/<name>.log`);
    ready when its log shows `ready_text` (BrokerError with the log tail if it exits or times out first)."""

    def __init__(self, name: str, command: str, doc: dict[str, Any], run_dir: Path, ready_text: str,
                 *, timeout_s: float = 90.0) -> None:
        self.name = name
        self.metrics_port = int(doc["metrics_port"])
        config = (run_dir / f"{name}.yaml").resolve()
        config.write_text(yaml.safe_dump(doc))
        self.process = ServiceProcess(name=name, run_dir=run_dir, cwd=Path.cwd(),
                                      argv=[sys.executable, "-m", "swarm_bridge.cli", command, "--config", str(config)])
        self.log_path = self.process.log_path
        self.process.start()
        try:
            self.process.wait_for_line(ready_text, timeout_s)
        except Exception:
            self.stop()
            raise

    @property
    def lines(self) -> list[str]:
        """The last 200 lines it logged."""
        return self.process.log_text().splitlines()[-200:]

    @property
    def warnings(self) -> int:
        """The warnings it logged so far."""
        return sum(" WARNING " in line for line in self.process.log_text().splitlines())

    @property
    def pid(self) -> int:
        pid = self.process.pid
        assert pid is not None  # started in __init__
        return pid

    def metrics(self) -> dict[str, float]:
        return scrape(self.metrics_port)

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (SIGKILL after `timeout_s`); its exit status."""
        self.process.stop(timeout_s)
        return self.process.returncode


def scrape(port: int) -> dict[str, float]:
    """A process's /metrics as {`name{label=value,...}`: value} (samples, counters with their _total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def wait_metric(port: int, name: str, value: float, timeout_s: float) -> None:
    """Wait until metric `name` reaches `value` (e.g. the coordinator owning all its shards)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if scrape(port).get(name, -1.0) >= value:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise BenchTimeout(f"metrics on port {port}", f"{name} did not reach {value:g} within {timeout_s:g} s",
                       "see the service's log in the run folder for why (e.g. a coordinator without its shards)")


def new_port() -> int:
    return free_port()
