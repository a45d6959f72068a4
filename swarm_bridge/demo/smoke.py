"""The smoke fleet: two robots publish on ROS, their bridges send upstream (one MQTT, one Kafka), taps read back.

Used by `swarm-bridge demo` until the bag-replay fleet demo lands, and by the integration tests.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm_bridge.codec import Envelope
from swarm_bridge.codec.envelope import RUN_SHIFT
from swarm_bridge.codec.wire import WireDecoder, route_subject, wire_decoder
from swarm_bridge.config import RobotBridgeConfig, validate_config
from swarm_bridge.ros import RobotBridge
from swarm_bridge.ros.context import Context, Node, new_node, ros_context
from swarm_bridge.ros.qos import qos_preset
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.ros.types import message_class
from swarm_bridge.routing import Route, routes_for
from swarm_bridge.sim.taps import KafkaTap, MqttTap
from swarm_bridge.spool import Spool
from swarm_bridge.transport import Uplink, ensure_kafka_topics, open_uplink

__all__ = ["SmokeFleet", "StreamResult", "robot_config", "ros_context"]

FLEET = "demo"
STREAMS = (  # (topic suffix, ROS type, channel, stream)
    ("robot_state", "swarm_bridge_msgs/msg/RobotState", "state", "robot_state"),
    ("task_status", "swarm_bridge_msgs/msg/TaskStatus", "event", "task_status"),
)


@dataclass
class StreamResult:
    """One robot's stream end to end: published on ROS, sent by the bridge, acked, arrived at the tap."""

    robot_id: str
    uplink: str
    stream: str
    destination: str
    format: str = "json"
    published: int = 0
    bridged: int = 0
    arrived: list[Envelope] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every message published arrived once, numbered 0.. in one run of the bridge (seq = run << 32 | n)."""
        seqs = sorted(e.seq for e in self.arrived)
        run = seqs[0] >> RUN_SHIFT if seqs else 0
        return self.published > 0 and seqs == [run << RUN_SHIFT | n for n in range(self.published)]


def robot_config(robot_id: str, *, uplink: str, host: str, port: int, fmt: str = "json",
                 registry: str | None = None) -> RobotBridgeConfig:
    """A robot bridge config bridging the smoke streams of `robot_id` over `uplink` as `fmt` records."""
    return validate_config({
        "robot_id": robot_id,
        "fleet": FLEET,
        "uplink": {"kind": uplink, "host": host, "port": port},
        "registry": registry,
        "routes": [
            {"topic": f"/{robot_id}/{suffix}", "type": ros_type, "channel": channel, "stream": stream,
             "qos": "reliable", "format": fmt}
            for suffix, ros_type, channel, stream in STREAMS
        ],
    }, RobotBridgeConfig, source=f"<smoke {robot_id}>")


class SmokeFleet:
    """Robots with bridges on one executor, a simulator publishing their state, and taps on the brokers."""

    def __init__(self, context: Context, configs: list[RobotBridgeConfig]) -> None:
        self.context = context
        self.configs = configs
        self.results: dict[tuple[str, str], StreamResult] = {}
        self._stack = ExitStack()
        self._nodes: list[Node] = []
        self.bridges: list[RobotBridge] = []

    def __enter__(self) -> SmokeFleet:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect every robot's uplink and taps on what they will send; create bridge nodes."""
        for config in self.configs:
            uplink: Uplink = open_uplink(config)
            self._stack.callback(uplink.close)
            node = new_node(f"robot_bridge_{config.robot_id}", self.context)
            self._nodes.append(node)
            spool_dir = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="swarm-spool-"))
            bridge = RobotBridge(node, config, uplink, spool=Spool(Path(spool_dir) / "spool.db", max_bytes=64 << 20))
            self._stack.callback(bridge.close)
            self.bridges.append(bridge)
            for route in routes_for(config):
                self.results[(config.robot_id, route.stream)] = StreamResult(
                    config.robot_id, route.scheme, route.stream, route.destination, route.format)
        self._taps = self._open_taps()
        self._decoders = {route.destination: self._decoder(bridge, route)
                          for bridge in self.bridges for route in routes_for(bridge.config)}

    def run(self, *, count: int, rate_hz: float, timeout_s: float) -> bool:
        """Publish `count` messages per stream at `rate_hz`, then wait until all arrive; True if all did."""
        sim = new_node("fleet_sim", self.context)
        self._nodes.append(sim)
        publishers = {
            (config.robot_id, stream): sim.create_publisher(message_class(ros_type), f"/{config.robot_id}/{suffix}",
                                                            qos_preset("reliable"))
            for config in self.configs for suffix, ros_type, _c, stream in STREAMS
        }
        executor = make_executor(self.context)
        matched = spin_until(executor, self._nodes, timeout_s=timeout_s,
                             done=lambda: all(p.get_subscription_count() > 0 for p in publishers.values()))
        if not matched:
            return False
        sent = 0

        def publish_next() -> None:
            nonlocal sent
            if sent >= count:
                return
            for (robot_id, stream), publisher in publishers.items():
                publisher.publish(_sample(stream, robot_id, sent))
                self.results[(robot_id, stream)].published += 1
            sent += 1

        sim.create_timer(1.0 / rate_hz, publish_next)
        spin_until(executor, [], done=lambda: sent >= count and self._bridged_all(), timeout_s=timeout_s)
        for bridge in self.bridges:
            bridge.flush(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._collect():
            time.sleep(0.1)
        return self._collect()

    def close(self) -> None:
        for tap in getattr(self, "_taps", []):
            tap.close()
        for node in self._nodes:
            node.destroy_node()
        self._stack.close()

    def _open_taps(self) -> list[Any]:
        taps: list[Any] = []
        for config in self.configs:
            up = config.uplink
            taps.append(_TAPS[up.kind](up.host, up.port, [r.destination for r in routes_for(config)]))
        return taps

    @staticmethod
    def _decoder(bridge: RobotBridge, route: Route) -> WireDecoder:
        """The route's decoder, on the bridge's own registry client (one per bridge, closed with it)."""
        subject = route_subject(bridge.config.subject_name_strategy, route.destination, route.ros_type)
        return wire_decoder(route.ros_type, route.format, route.scheme,  # type: ignore[arg-type]
                            subject=subject, lookup=bridge.registry)

    def _bridged_all(self) -> bool:
        for bridge in self.bridges:
            for route in bridge.routes:
                self.results[(bridge.config.robot_id, route.route.stream)].bridged = route.counts.sent
        return all(r.bridged >= r.published for r in self.results.values())

    def _collect(self) -> bool:
        """Decode what the taps hold into the results; True when every stream is complete."""
        by_destination: dict[str, list[Envelope]] = {}
        for tap in self._taps:
            for record in tap.snapshot():
                by_destination.setdefault(record.topic, []).append(self._decoders[record.topic].decode(record.payload))
        for result in self.results.values():
            result.arrived = [e for e in by_destination.get(result.destination, [])
                              if e.robot_id == result.robot_id and e.stream == result.stream]
        return all(r.complete for r in self.results.values())


def _sample(stream: str, robot_id: str, index: int) -> Any:
    """The index-th message of a smoke stream: values that vary, so content checks mean something."""
    if stream == "robot_state":
        msg = message_class("swarm_bridge_msgs/msg/RobotState")()
        msg.robot_id = robot_id
        msg.robot_kind = "drone" if robot_id.startswith("drone") else "amr"
        msg.capabilities = ["navigate", "inspect"]
        msg.mode = 2
        msg.pose.header.frame_id = "map"
        msg.pose.pose.position.x = float(index)
        msg.pose.pose.position.y = math.sin(index / 10.0)
        msg.battery_percent = 100.0 - index * 0.1
        msg.stamp.sec = 1_700_000_000 + index
        return msg
    msg = message_class("swarm_bridge_msgs/msg/TaskStatus")()
    msg.task_id = f"task-{index:05d}"
    msg.robot_id = robot_id
    msg.state = 3
    msg.progress = min(1.0, index / 100.0)
    msg.stamp.sec = 1_700_000_000 + index
    return msg


def _mqtt_tap(host: str, port: int, destinations: list[str]) -> Any:
    return MqttTap(host=host, port=port, patterns=destinations)


def _kafka_tap(host: str, port: int, destinations: list[str]) -> Any:
    bootstrap = f"{host}:{port}"
    ensure_kafka_topics(bootstrap, destinations)
    return KafkaTap(bootstrap=bootstrap, topics=destinations)


# uplink.kind -> a tap reading what the robots send on that uplink (host, port, destination topics).
_TAPS: dict[str, Callable[[str, int, list[str]], Any]] = {"mqtt": _mqtt_tap, "kafka": _kafka_tap}
