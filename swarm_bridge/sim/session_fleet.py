"""Simulated robots of one worker process on a real Mosquitto: one MQTT connection per robot, all driven by
one `MqttSessions` loop in the worker's thread, each robot sending the realistic mix at its rates and
answering the TaskCommands the gateway brings down (ACCEPTED, RUNNING, DONE).

No network thread per robot: each `pump` writes what the robots queued since the last one (a socket write
per robot), reads PUBACKs and commands, so a few processes carry hundreds of robots.
"""

from __future__ import annotations

import heapq
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from swarm_bridge.coordinator.core.dispatch import ASSIGN
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.routing.naming import mqtt_topic, presence_topic
from swarm_bridge.routing.presence import presence_payload
from swarm_bridge.sim.records import RobotRecords, StreamTemplate
from swarm_bridge.sim.robots import DEFAULT_MIX, StreamSpec
from swarm_bridge.transport.mqtt_client import LastWill, Message, MqttOptions
from swarm_bridge.transport.mqtt_sessions import MqttSession, MqttSessions

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
    session: MqttSession
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
    command_ms: list[float] = field(default_factory=list)  # each new command: its stamp -> received here
    assigned: dict[str, tuple[int, int]] = field(default_factory=dict)  # task -> its assign's (stamp, received) ns


class SimWorker:
    """Connects its robots at construction; `run_sends` sends the mix for a while; `serve` answers commands."""

    def __init__(self, plan: RobotPlan, *, timeout_s: float = 60.0) -> None:
        self.plan = plan
        self.stats = WorkerStats()
        self.sessions = MqttSessions(on_message=self._on_message, on_connect=self._on_connect)
        self.records = RobotRecords(kind="amr", capabilities=CAPABILITIES["amr"])
        rng = random.Random(plan.seed)
        self.rates = dict(plan.rates_hz)
        self.robots: list[_Robot] = []
        self._closed = False
        self._props = [[("ros_type", spec.ros_type)] for spec in plan.mix]
        self._status_props = list(self.records.status.user_properties)
        for robot_id in plan.robots:
            topics = [mqtt_topic(plan.prefix, plan.fleet, robot_id, s.channel, s.name) for s in plan.mix]
            templates: list[StreamTemplate | None] = [
                None if s.name == "robot_state" else StreamTemplate(s, robot_id, t)
                for s, t in zip(plan.mix, topics, strict=True)]
            will = LastWill(presence_topic(plan.prefix, plan.fleet, robot_id),
                            presence_payload(robot_id, "offline", "connection lost"), qos=1, retain=True)
            # the robot bridge's window of 1,000: while the hub keeps up a robot has a handful unacked
            options = MqttOptions(host=plan.host, port=plan.port, client_id=f"sim-{plan.fleet}-{robot_id}",
                                  keepalive_s=60, will=will, max_inflight=1000, connect_timeout_s=timeout_s)
            session = self.sessions.open(options)
            self.robots.append(_Robot(robot_id, session, templates, topics, rng.uniform(0, 100),
                                      rng.uniform(0, 100), [0] * len(plan.mix)))
        self._connect_all(timeout_s)

    # --- connection ------------------------------------------------------------------------------------

    def _connect_all(self, timeout_s: float) -> None:
        try:
            self.sessions.wait_connected(timeout_s)
        except Exception:
            self.sessions.close()
            raise
        for robot in self.robots:
            self._publish(robot.session, presence_topic(self.plan.prefix, self.plan.fleet, robot.robot_id),
                          presence_payload(robot.robot_id, "online", "connected"), None, retain=True)
        self.pump(0.05)

    def _on_connect(self, session: MqttSession, _session_present: bool) -> None:
        """Subscribe to the robot's commands (again after a reconnect: a robot's session is not kept)."""
        robot_id = self.plan.robots[session.index]
        if session.connects > 1:
            self.stats.reconnects += 1
        self.sessions.subscribe(session, [mqtt_topic(self.plan.prefix, self.plan.fleet, robot_id, "command",
                                                     "task_command")], qos=1)

    def _publish(self, session: MqttSession, topic: str, payload: bytes, props: list[tuple[str, str]] | None, *,
                 retain: bool = False) -> None:
        self.sessions.publish(session, topic, payload, qos=self.plan.qos, retain=retain,
                              content_type=None if props is None else _CONTENT_TYPE, user_properties=props)
        self.stats.published += 1

    def pump(self, timeout_s: float) -> None:
        """Write what the robots queued, read what arrived (acks, commands), within `timeout_s`; keep-alive and
        reconnects too."""
        self.sessions.pump(timeout_s)

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
                self._publish(robot.session, robot.topics[s], payload, self._props[s])
                robot.sent[s] = n + 1
                following = when + 1.0 / self.rates[mix[s].name]
                if following < end:
                    heapq.heappush(due, (following, r, s, k + 1))
                now = time.time()
            wait = (due[0][0] - now) if due else 0.0
            self.pump(min(0.005, max(0.0, wait)))
        self.stats.send_end = time.time()
        return {(robot.robot_id, spec.name): robot.sent[s] for robot in self.robots for s, spec in enumerate(mix)}

    # --- commands --------------------------------------------------------------------------------------

    def _on_message(self, session: MqttSession, message: Message) -> None:
        robot = self.robots[session.index]
        received_ns = time.time_ns()
        try:
            command = self.records.commands.decode(message.payload)
            body = command.body
            command_id, task_id, action = str(body["command_id"]), str(body["task_id"]), int(body["action"])
        except Exception:  # a bad command is counted; the robot goes on
            self.stats.bad_commands += 1
            return
        self.stats.commands += 1
        if command_id in robot.commands_seen:
            self.stats.duplicate_commands += 1
            return
        robot.commands_seen.add(command_id)
        self.stats.command_ms.append((received_ns - command.stamp_ns) / 1e6)  # stamped as its round's commit began
        if action != ASSIGN:
            return
        self.stats.assigned[task_id] = (command.stamp_ns, received_ns)
        topic = mqtt_topic(self.plan.prefix, self.plan.fleet, robot.robot_id, "event", "task_status")
        for state in _TASK_STATES:  # the simulated work takes no time: round trips measure the system
            robot.status_seq += 1
            payload = self.records.status_record(robot.robot_id, task_id, state,
                                                 seq=self.plan.run << 32 | robot.status_seq)
            self._publish(session, topic, payload, self._status_props)
            self.stats.statuses += 1

    def serve(self, seconds: float) -> None:
        """Answer commands (and keep connections alive) for `seconds`."""
        end = time.time() + seconds
        while time.time() < end:
            self.pump(0.01)

    def close(self, timeout_s: float = 10.0) -> None:
        """Say offline (retained presence), wait for the broker's acks, disconnect."""
        for robot in self.robots:
            self._publish(robot.session, presence_topic(self.plan.prefix, self.plan.fleet, robot.robot_id),
                          presence_payload(robot.robot_id, "offline", "stopped"), None, retain=True)
        deadline = time.monotonic() + timeout_s
        while self.sessions.unacked and time.monotonic() < deadline:
            self.pump(0.01)
        self.stats.acked = self.stats.published - self.sessions.unacked
        self._closed = True
        self.sessions.close()

    def summary(self) -> dict[str, Any]:
        stats = self.stats
        if self.sessions.sessions and not self._closed:
            stats.acked = stats.published - self.sessions.unacked
        return {"published": stats.published, "acked": stats.acked, "commands": stats.commands,
                "duplicate_commands": stats.duplicate_commands, "bad_commands": stats.bad_commands,
                "statuses": stats.statuses, "reconnects": stats.reconnects, "max_lag_s": stats.max_lag_s,
                "send_start": stats.send_start, "send_end": stats.send_end, "command_ms": list(stats.command_ms),
                "assigned": dict(stats.assigned)}


def merge_counts(parts: list[dict[tuple[str, str], int]]) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for part in parts:
        out.update(part)
    return out
