"""Simulated robots on a site's MQTT broker, for tests and demos of the single-site coordinator.

Each robot is its own MQTT client, as a robot bridge is: retained presence with a Last Will, RobotState
and TaskStatus records on its topics, TaskCommands from its command topic answered by the reference
robot's task logic (`ros.task_work.TaskWork`, no ROS needed).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from swarm_bridge.codec.signing import is_signed, open_signed
from swarm_bridge.coordinator.records import presence_payload, robot_state_body
from swarm_bridge.coordinator.site_wire import SiteRecords
from swarm_bridge.ros.task_work import ACTION_ASSIGN, Report, TaskWork

__all__ = ["Received", "SiteRobot", "SiteRobots"]

log = logging.getLogger(__name__)


@dataclass
class SiteRobot:
    """One simulated robot: what it tells the coordinator it can do (`capabilities`), and what it really does
    (`able`, default the same; a task outside it is rejected)."""

    robot_id: str
    kind: str
    capabilities: list[str]
    x: float = 0.0
    y: float = 0.0
    battery: float = 90.0
    able: list[str] | None = None
    work: TaskWork = field(init=False)
    seq: int = 0
    online: bool = False
    signed: int = 0  # commands that came signed

    def __post_init__(self) -> None:
        self.work = TaskWork(frozenset(self.able if self.able is not None else self.capabilities))


@dataclass(frozen=True)
class Received:
    """A command as a robot got it."""

    robot_id: str
    task_id: str
    command_id: str
    action: int


class SiteRobots:
    """Many simulated robots, one MQTT client each; a thread advances their work and sends their state."""

    def __init__(self, *, host: str, port: int, records: SiteRecords, robots: list[SiteRobot], work_s: float = 0.05,
                 state_period_s: float = 0.5) -> None:
        self.host, self.port, self.records = host, port, records
        self.topics = records.topics
        self.robots = {r.robot_id: r for r in robots}
        self.state_period_s = state_period_s
        for robot in robots:
            robot.work.work_s = work_s
        self.received: list[Received] = []
        self.bad_commands = 0
        self._lock = threading.Lock()
        self._clients: dict[str, paho.Client] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> SiteRobots:
        """Connect every robot (presence online, first RobotState) and start working."""
        for robot in self.robots.values():
            self._connect(robot, timeout_s)
        with self._lock:
            for robot in self.robots.values():
                self._state(robot)
        self._thread = threading.Thread(target=self._run, name="site-robots", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for robot_id, client in self._clients.items():
            if self.robots[robot_id].online:
                client.disconnect()
            client.loop_stop()

    def drop(self, robot_id: str) -> None:
        """The robot's connection dies (no DISCONNECT): the broker publishes its Last Will, presence offline."""
        with self._lock:
            robot = self.robots[robot_id]
            robot.online = False
        client = self._clients[robot_id]
        client.loop_stop()
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def publish_raw(self, robot_id: str, channel: str, stream: str, payload: bytes) -> None:
        """Publish any bytes on one of a robot's topics (malformed-input tests)."""
        self._clients[robot_id].publish(self.topics.robot(robot_id, channel, stream), payload, qos=1)

    def _connect(self, robot: SiteRobot, timeout_s: float) -> None:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{self.topics.fleet}-{robot.robot_id}",
                             protocol=paho.MQTTv5)
        presence = self.topics.presence(robot.robot_id)
        client.will_set(presence, presence_payload(robot.robot_id, "offline", "connection lost"), qos=1, retain=True)
        connected = threading.Event()
        command_topic = self.topics.command(robot.robot_id)

        def on_connect(c: paho.Client, _u: object, _f: object, reason: object, _p: object) -> None:
            c.subscribe(command_topic, qos=1)
            c.publish(presence, presence_payload(robot.robot_id, "online", "connected"), qos=1, retain=True)
            connected.set()

        def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
            try:
                self._command(robot, bytes(message.payload))
            except Exception:  # a bad command is counted; the robot goes on
                self.bad_commands += 1
                log.exception("simulated robot %s: cannot handle a command", robot.robot_id)

        client.on_connect = on_connect
        client.on_message = on_message
        client.connect(self.host, self.port, keepalive=30)
        client.loop_start()
        if not connected.wait(timeout_s):
            raise ConnectionError(f"simulated robot {robot.robot_id}: no CONNACK from mqtt://{self.host}:{self.port}")
        robot.online = True
        self._clients[robot.robot_id] = client

    def _command(self, robot: SiteRobot, payload: bytes) -> None:
        if is_signed(payload):
            _key_id, _signature, payload = open_signed(payload)
            robot.signed += 1
        body = self.records.command_fields(payload)
        with self._lock:
            if not robot.online:
                return
            action = int(body["action"])
            self.received.append(Received(robot.robot_id, str(body["task_id"]), str(body["command_id"]), action))
            reports = robot.work.command(task_id=str(body["task_id"]), action=action, kind=str(body["kind"]),
                                         now_s=time.monotonic())
            self._report(robot, reports)
            if action == ACTION_ASSIGN and reports:
                self._state(robot)

    def _report(self, robot: SiteRobot, reports: list[Report]) -> None:
        for report in reports:
            robot.seq += 1
            record = self.records.status_record(robot_id=robot.robot_id, task_id=report.task_id, state=report.state,
                                                seq=robot.seq, now_ns=time.time_ns(), reason=report.reason,
                                                progress=report.progress)
            self._clients[robot.robot_id].publish(self.topics.robot(robot.robot_id, "event", "task_status"), record,
                                                  qos=1)

    def _state(self, robot: SiteRobot) -> None:
        robot.seq += 1
        now = time.time_ns()
        body = robot_state_body(robot.robot_id, robot.kind, robot.capabilities, x=robot.x, y=robot.y,
                                battery=robot.battery, mode=2 if robot.work.current else 1,
                                current_task_id=robot.work.current, now_ns=now)
        self._clients[robot.robot_id].publish(self.topics.robot(robot.robot_id, "state", "robot_state"),
                                              self.records.state_record(body, seq=robot.seq, now_ns=now), qos=1)

    def _run(self) -> None:
        last_state = time.monotonic()
        while not self._stop.wait(0.02):
            now = time.monotonic()
            with self._lock:
                for robot in self.robots.values():
                    if robot.online:
                        self._report(robot, robot.work.advance(now))
                if now - last_state >= self.state_period_s:
                    last_state = now
                    for robot in self.robots.values():
                        if robot.online:
                            self._state(robot)
