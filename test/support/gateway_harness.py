"""What the gateway's integration tests share: configs, a gateway in a thread or a process, Kafka contents."""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from swarm_bridge.config import GatewayConfig, validate_config
from swarm_bridge.gateway.heads import avro_head
from swarm_bridge.gateway.service import Gateway
from swarm_bridge.sim import SimRobot
from swarm_bridge.sim.taps import TappedRecord

CLI = [sys.executable, "-m", "swarm_bridge.cli", "gateway", "--config"]


def write_config(path: Path, *, gateway_id: str, fleet: str, mqtt_port: int, bootstrap: str, registry: Path,
                 **extra: Any) -> Path:
    """A gateway config file for the test brokers (validated before it is written)."""
    data: dict[str, Any] = {"gateway_id": gateway_id, "fleet": fleet, "registry": str(registry),
                            "mqtt": {"port": mqtt_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
                            "kafka": {"bootstrap": bootstrap, "linger_ms": 2}}
    for key, value in extra.items():
        data[key] = {**data[key], **value} if isinstance(data.get(key), dict) else value
    validate_config(data, GatewayConfig)
    path.write_text(yaml.safe_dump(data))
    return path


class GatewayThread:
    """The gateway in this process, its loop in a thread (fast to start; counts readable)."""

    def __init__(self, config: Path) -> None:
        from swarm_bridge.config import load_config

        self.gateway = Gateway(load_config(config, GatewayConfig))
        self.gateway.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.gateway.run, args=(self._stop,), daemon=True)
        self._thread.start()

    @property
    def counts(self) -> Any:
        return self.gateway.metrics.counts

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.gateway.close()


class GatewayProcess:
    """`swarm-bridge gateway --config FILE` as a subprocess; its log lines collected."""

    def __init__(self, config: Path, *, timeout_s: float = 60.0) -> None:
        self.proc = subprocess.Popen([*CLI, str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert wait_for(lambda: any(": running" in line for line in self.lines) or self.proc.poll() is not None,
                        timeout_s), "gateway did not start"
        assert self.proc.poll() is None, "".join(self.lines)[-3000:]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> str:
        """SIGTERM, wait for a clean exit (status 0), return the whole log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        assert self.proc.returncode == 0, self.output[-3000:]
        return self.output


def wait_for(done: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `done` until it is true or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def kafka_heads(records: Iterable[TappedRecord]) -> collections.Counter[tuple[str, str, int]]:
    """(robot, stream, seq) of each Confluent Avro record -> how many times Kafka holds it."""
    return collections.Counter((h.robot_id, h.stream, h.seq) for h in (avro_head(r.payload[5:]) for r in records
                                                                        if r.payload[:1] == b"\x00"))


def sent_heads(robots: Iterable[SimRobot]) -> set[tuple[str, str, int]]:
    """(robot, stream, seq) of every record the simulated robots numbered."""
    return {(r.robot_id, stream, r.seq(n)) for r in robots for stream, count in r.sent.items() for n in range(count)}


def read_topic(bootstrap: str, topic: str, *, count: int, timeout_s: float = 30.0) -> list[Any]:
    """The first `count` records of `topic` (all partitions) as confluent-kafka messages, headers included."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-read", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            found += [m for m in consumer.consume(100, 0.5) if m.error() is None]
        return found
    finally:
        consumer.close()
