"""Simulated robots of one worker process on a real Mosquitto: one paho client (one MQTT connection) per
robot, all driven by one selector loop, each robot sending the realistic mix at its rates and answering
the TaskCommands the gateway brings down (ACCEPTED, RUNNING, DONE).

paho runs without its loop thread: `publish` writes to the socket at once, the selector reads PUBACKs
and commands, so a few processes carry hundreds of robots.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import random
import selectors
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from swarm_bridge.coordinator.dispatch import ASSIGN
from swarm_bridge.coordinator.tasks import TaskState
from swarm_bridge.fleetbench.records import RobotRecords, StreamTemplate
from swarm_bridge.routing.naming import mqtt_topic, presence_topic
from swarm_bridge.sim.robots import DEFAULT_MIX, StreamSpec, presence_payload
from swarm_bridge.transport.mqtt_properties import PackedProperties

__all__ = ["CAPABILITIES", "MIX_HZ", "RobotPlan", "SimWorker", "robot_ids"]

log = logging.getLogger(__name__)

MIX_HZ = {"odometry": 20.0, "imu": 50.0, "battery": 1.0, "robot_state": 1.0}  # msgs/s per robot: 72
CAPABILITIES = {"amr": ["navigate", "pick", "charge"]}
_TASK_STATES = (TaskState.ACCEPTED, TaskState.RUNNING, TaskState.DONE)
_CONTENT_TYPE = "avro/binary; encoding=single-object"


def robot_ids(count: int) -> list[str]:
    return [f"robot_{i:05d}" for i in range(count)]


@dataclass(frozen=True)
class RobotPlan:
    """What one worker simulates: its robots, the broker, the run number (seq = run << 32 | n), the mix."""

    robots: tuple[str, ...]
    port: int
    run: int
    fleet: str = "bench"
    prefix: str = "swarm"
    host: str = "127.0.0.1"
    seed: int = 0
    qos: int = 1
    mix: tuple[StreamSpec, ...] = DEFAULT_MIX
    rates_hz: tuple[tuple[str, float], ...] = tuple(MIX_HZ.items())


@dataclass
class _Robot:
    robot_id: str
    client: paho.Client
    templates: list[StreamTemplate | None]  # None: the robot_state stream (built from its state)
    topics: list[str]
    x: float
    y: float
    sent: list[int]
    status_seq: int = 0
    commands_seen: set[str] = field(default_factory=set)


@dataclass
class WorkerStats:
    """What a worker did: publishes, acks, commands, statuses, reconnects, how far it fell behind."""

    published: int = 0
    acked: int = 0
    commands: int = 0
    duplicate_commands: int = 0
    bad_commands: int = 0
    statuses: int = 0
    reconnects: int = 0
    max_lag_s: float = 0.0
    send_start: float = 0.0
    send_end: float = 0.0


class SimWorker:
    """Connects its robots at construction; `run_sends` sends the mix for a while; `serve` answers commands."""

    def __init__(self, plan: RobotPlan, *, timeout_s: float = 60.0) -> None:
        self.plan = plan
        self.stats = WorkerStats()
        self.selector = selectors.DefaultSelector()
        self.records = RobotRecords(kind="amr", capabilities=CAPABILITIES["amr"])
        rng = random.Random(plan.seed)
        self.rates = dict(plan.rates_hz)
        self.robots: list[_Robot] = []
        self._writes: set[paho.Client] = set()
        self._props = [PackedProperties(_CONTENT_TYPE, [("ros_type", spec.ros_type)]) for spec in plan.mix]
        self._status_props = PackedProperties(_CONTENT_TYPE, list(self.records.status.user_properties))
        for robot_id in plan.robots:
            topics = [mqtt_topic(plan.prefix, plan.fleet, robot_id, s.channel, s.name) for s in plan.mix]
            templates: list[StreamTemplate | None] = [
                None if s.name == "robot_state" else StreamTemplate(s, robot_id, t)
                for s, t in zip(plan.mix, topics, strict=True)]
            client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{plan.fleet}-{robot_id}",
                                 protocol=paho.MQTTv5, userdata=len(self.robots))
            # 0 = no client-side window: every publish goes out at once, as under the robot bridge's 1,000
            # while the hub keeps up (a robot has a handful unacked), but paho then skips a walk over its
            # unacked messages on every PUBACK
            client.max_inflight_messages_set(0)
            client.will_set(presence_topic(plan.prefix, plan.fleet, robot_id),
                            presence_payload(robot_id, "offline", "connection lost"), qos=1, retain=True)
            client.on_connect = self._on_connect
            client.on_message = self._on_message
            client.on_publish = self._on_publish
            self.robots.append(_Robot(robot_id, client, templates, topics, rng.uniform(0, 100), rng.uniform(0, 100),
                                      [0] * len(plan.mix)))
        self._connect_all(timeout_s)

    # --- connection ------------------------------------------------------------------------------------

    def _connect_all(self, timeout_s: float) -> None:
        for robot in self.robots:
            robot.client.connect(self.plan.host, self.plan.port, keepalive=60)
            self._register(robot.client)
        deadline = time.monotonic() + timeout_s
        while not all(r.client.is_connected() for r in self.robots):
            if time.monotonic() > deadline:
                missing = sum(not r.client.is_connected() for r in self.robots)
                raise TimeoutError(f"{missing} of {len(self.robots)} robots not connected to "
                                   f"mqtt://{self.plan.host}:{self.plan.port} in {timeout_s:g} s")
            self.pump(0.01)
        for robot in self.robots:
            self._publish(robot.client, presence_topic(self.plan.prefix, self.plan.fleet, robot.robot_id),
                          presence_payload(robot.robot_id, "online", "connected"), None, retain=True)
        self.pump(0.05)

    def _register(self, client: paho.Client) -> None:
        sock = client.socket()
        if sock is not None:
            self.selector.register(sock, selectors.EVENT_READ, client)

    def _on_connect(self, client: paho.Client, userdata: Any, *_a: Any) -> None:
        robot = self.robots[userdata]
        client.subscribe(mqtt_topic(self.plan.prefix, self.plan.fleet, robot.robot_id, "command", "task_command"),
                         qos=1)

    def _on_publish(self, *_a: Any) -> None:
        self.stats.acked += 1

    def _publish(self, client: paho.Client, topic: str, payload: bytes, props: Properties | None, *,
                 retain: bool = False) -> None:
        client.publish(topic, payload, qos=self.plan.qos, retain=retain, properties=props)
        self.stats.published += 1
        if client.want_write():
            self._writes.add(client)

    def pump(self, timeout_s: float) -> None:
        """Read what arrived (acks, commands), flush pending writes, within `timeout_s`."""
        for key, _events in self.selector.select(max(0.0, timeout_s)):
            client: paho.Client = key.data
            if client.loop_read(64) != paho.MQTT_ERR_SUCCESS:
                self._reconnect(client, key.fileobj)
            elif client.want_write():
                self._writes.add(client)
        for client in list(self._writes):
            client.loop_write()
            if not client.want_write():
                self._writes.discard(client)

    def _reconnect(self, client: paho.Client, old: Any) -> None:
        self.stats.reconnects += 1
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(old)
        try:
            client.reconnect()
        except OSError as exc:
            log.warning("simulated robot: reconnect failed (%s)", exc)
            return
        self._register(client)

    def keepalive(self) -> None:
        for robot in self.robots:
            robot.client.loop_misc()

    # --- the mix ---------------------------------------------------------------------------------------

    def run_sends(self, start: float, duration_s: float) -> dict[tuple[str, str], int]:
        """Send every robot's mix from wall time `start` for `duration_s` (each stream at its rate, phases
        spread at random); returns the records sent per (robot_id, stream)."""
        rng = random.Random(self.plan.seed + 1)
        mix = self.plan.mix
        due: list[tuple[float, int, int, int]] = []  # (wall time, robot, stream, k)
        for r in range(len(self.robots)):
            for s, spec in enumerate(mix):
                period = 1.0 / self.rates[spec.name]
                due.append((start + rng.uniform(0, period), r, s, 0))
        heapq.heapify(due)
        end = start + duration_s
        next_misc = time.time() + 1.0
        run = self.plan.run
        while time.time() < start:
            self.pump(min(0.01, max(0.0, start - time.time())))
        self.stats.send_start = time.time()
        while due:
            now = time.time()
            while due and due[0][0] <= now:
                when, r, s, k = heapq.heappop(due)
                self.stats.max_lag_s = max(self.stats.max_lag_s, now - when)
                robot = self.robots[r]
                n = robot.sent[s]
                template = robot.templates[s]
                seq = run << 32 | n
                if template is None:
                    payload = self.records.state_record(robot.robot_id, seq=seq, x=robot.x, y=robot.y, battery=90.0)
                else:
                    payload = template.record(seq, time.time_ns())
                self._publish(robot.client, robot.topics[s], payload, self._props[s])
                robot.sent[s] = n + 1
                following = when + 1.0 / self.rates[mix[s].name]
                if following < end:
                    heapq.heappush(due, (following, r, s, k + 1))
                now = time.time()
            wait = (due[0][0] - now) if due else 0.0
            self.pump(min(0.005, max(0.0, wait)))
            if now >= next_misc:
                next_misc = now + 1.0
                self.keepalive()
        self.stats.send_end = time.time()
        return {(robot.robot_id, spec.name): robot.sent[s] for robot in self.robots for s, spec in enumerate(mix)}

    # --- commands --------------------------------------------------------------------------------------

    def _on_message(self, client: paho.Client, userdata: Any, msg: Any) -> None:
        robot = self.robots[userdata]
        try:
            body = self.records.commands.decode(msg.payload).body
            command_id, task_id, action = str(body["command_id"]), str(body["task_id"]), int(body["action"])
        except Exception:  # a bad command is counted; the robot goes on
            self.stats.bad_commands += 1
            return
        self.stats.commands += 1
        if command_id in robot.commands_seen:
            self.stats.duplicate_commands += 1
            return
        robot.commands_seen.add(command_id)
        if action != ASSIGN:
            return
        topic = mqtt_topic(self.plan.prefix, self.plan.fleet, robot.robot_id, "event", "task_status")
        for state in _TASK_STATES:  # the simulated work takes no time: round trips measure the system
            robot.status_seq += 1
            payload = self.records.status_record(robot.robot_id, task_id, state,
                                                 seq=self.plan.run << 32 | robot.status_seq)
            self._publish(client, topic, payload, self._status_props)
            self.stats.statuses += 1
        self._writes.add(client)

    def serve(self, seconds: float) -> None:
        """Answer commands (and keep connections alive) for `seconds`."""
        end = time.time() + seconds
        while time.time() < end:
            self.pump(0.01)
        self.keepalive()

    def close(self, timeout_s: float = 10.0) -> None:
        """Say offline (retained presence), wait for the broker's acks, disconnect."""
        for robot in self.robots:
            self._publish(robot.client, presence_topic(self.plan.prefix, self.plan.fleet, robot.robot_id),
                          presence_payload(robot.robot_id, "offline", "stopped"), None, retain=True)
        deadline = time.monotonic() + timeout_s
        while self.stats.acked < self.stats.published and time.monotonic() < deadline:
            self.pump(0.01)
        for robot in self.robots:
            robot.client.disconnect()
        self.pump(0.05)
        self.selector.close()

    def summary(self) -> dict[str, Any]:
        stats = self.stats
        return {"published": stats.published, "acked": stats.acked, "commands": stats.commands,
                "duplicate_commands": stats.duplicate_commands, "bad_commands": stats.bad_commands,
                "statuses": stats.statuses, "reconnects": stats.reconnects, "max_lag_s": stats.max_lag_s,
                "send_start": stats.send_start, "send_end": stats.send_end}


def merge_counts(parts: list[dict[tuple[str, str], int]]) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for part in parts:
        out.update(part)
    return out
