"""Count what reaches the broker from a process of its own, so a busy replay never delays the arrival times.

`DeliveryTap` starts `python -m swarm_bridge.demo.delivery` with the streams to watch (JSON on stdin); the child
subscribes, decodes each record and prints one line per record: destination, seq (-1: undecodable), arrival ns.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from swarm_bridge.demo.errors import DemoError

__all__ = ["Delivery", "DeliveryTap", "WatchedStream", "body_digest"]


@dataclass(frozen=True)
class WatchedStream:
    """An MQTT destination to watch and how its records are encoded."""

    destination: str
    ros_type: str
    format: str


@dataclass(frozen=True)
class Delivery:
    """One record as it reached the broker: where, its seq (-1 when it did not decode), when (time.time_ns()),
    and a digest of its decoded body (`body_digest`), to compare with what was replayed."""

    destination: str
    seq: int
    arrived_ns: int
    digest: str = ""


def body_digest(body: object) -> str:
    """A short digest of a decoded record body: equal bodies, equal digests (NaN included)."""
    text = json.dumps(body, sort_keys=True, default=repr, allow_nan=True)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class DeliveryTap:
    """The parent side: starts the child, reads its lines in a thread, hands out deliveries."""

    def __init__(self, *, host: str, port: int, registry: str, streams: Sequence[WatchedStream],
                 kafka: str | None = None, timeout_s: float = 60.0) -> None:
        """Watch the MQTT destinations of `streams`; with `kafka` (a bootstrap), their Kafka topics instead
        (`fleet.{channel}.{stream}`, keyed by robot id), as the gateway writes them."""
        spec = {"host": host, "port": port, "registry": registry, "kafka": kafka,
                "streams": [[s.destination, s.ros_type, s.format] for s in streams]}
        self._process = subprocess.Popen([sys.executable, "-m", "swarm_bridge.demo.delivery"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(spec))
        self._process.stdin.close()
        self._lock = threading.Lock()
        self._new: list[Delivery] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="delivery-tap", daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout_s):
            self.close()
            raise DemoError(f"the delivery tap did not subscribe to mqtt://{host}:{port}"
                            f"{f' (Kafka {kafka})' if kafka else ''} within {timeout_s:g} s. Fix: check that the "
                            f"broker is up and reachable; the tap said: {self._stderr()}")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("ready"):
                self._ready.set()
                continue
            destination, seq, arrived, digest = line.rstrip("\n").split("\t")
            with self._lock:
                self._new.append(Delivery(destination, int(seq), int(arrived), digest))

    def take(self) -> list[Delivery]:
        """Deliveries read since the last call."""
        with self._lock:
            new, self._new = self._new, []
        return new

    def close(self) -> None:
        """Stop the child and collect its last lines."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._reader.join(5)

    def _stderr(self) -> str:
        if self._process.poll() is None or self._process.stderr is None:
            return "still starting"
        return self._process.stderr.read()[-2000:]


def main() -> int:
    """The child: subscribe to every watched destination, print one line per record until SIGTERM/SIGINT."""
    from swarm_bridge.signals import stop_on_signals

    spec = json.loads(sys.stdin.read())
    with stop_on_signals() as stop:
        return _tap(spec, stop)


def _tap(spec: dict[str, Any], stop: threading.Event) -> int:
    """Tap the spec's destinations until `stop`, one line per record."""
    from swarm_bridge.codec import CodecError
    from swarm_bridge.codec.registry import topic_name
    from swarm_bridge.codec.wire import WireDecoder, registry_ids, wire_decoder
    from swarm_bridge.routing import kafka_key, kafka_topic
    from swarm_bridge.sim.taps import KafkaTap, MqttTap
    from swarm_bridge.transport import ensure_kafka_topics

    lookup = registry_ids(spec["registry"])
    tap: MqttTap | KafkaTap
    if spec["kafka"]:
        # (kafka topic, robot id) -> (MQTT destination it came from, decoder of the Confluent framing)
        where: dict[tuple[str, bytes | None], tuple[str, WireDecoder]] = {}
        for destination, ros_type, fmt in spec["streams"]:
            _prefix, _fleet, robot_id, channel, stream = destination.split("/")
            topic = kafka_topic(channel, stream)
            where[(topic, kafka_key(robot_id))] = (destination, wire_decoder(
                ros_type, fmt, "kafka", subject=topic_name(topic, ros_type), lookup=lookup))
        topics = sorted({topic for topic, _key in where})
        ensure_kafka_topics(spec["kafka"], topics)
        tap = KafkaTap(bootstrap=spec["kafka"], topics=topics, from_start=True)
    else:
        where = {(destination, None): (destination, wire_decoder(
            ros_type, fmt, "mqtt", subject=topic_name(destination, ros_type), lookup=lookup))
            for destination, ros_type, fmt in spec["streams"]}
        tap = MqttTap(host=spec["host"], port=spec["port"], patterns=sorted(d for d, _k in where))
    print("ready", flush=True)
    done = 0
    try:
        while True:
            stopping = stop.wait(0.05)
            records = tap.snapshot()[done:]
            done += len(records)
            lines = []
            for record in records:
                found = where.get((record.topic, record.key))
                if found is None:
                    continue
                destination, decoder = found
                try:
                    envelope = decoder.decode(record.payload)
                    seq, digest = envelope.seq, body_digest(envelope.body)
                except CodecError:
                    seq, digest = -1, ""
                lines.append(f"{destination}\t{seq}\t{record.arrived_ns}\t{digest}\n")
            if lines:
                sys.stdout.write("".join(lines))
                sys.stdout.flush()
            if stopping:
                return 0
    finally:
        tap.close()
        lookup.close()
        time.sleep(0)


if __name__ == "__main__":
    sys.exit(main())
