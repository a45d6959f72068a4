"""Simulated robots on a site's MQTT broker, for tests and demos of the single-site coordinator.

Each robot is its own MQTT client, as a robot bridge is: retained presence with a Last Will, RobotState
and TaskStatus records on its topics, TaskCommands from its command topic answered by the reference
robot's task logic (`ros.task_work.TaskWork`, no ROS needed).
"""

from __future__ import annotations

import logging
import threading
import time

from swarm_bridge.codec.signing import is_signed, open_signed
from swarm_bridge.ros.task_work import ACTION_ASSIGN, Report
from swarm_bridge.routing.presence import presence_payload
from swarm_bridge.sim.records import SiteRobotRecords, robot_state_body
from swarm_bridge.sim.task_robots import Received, TaskRobot
from swarm_bridge.transport.link import LinkBusy
from swarm_bridge.transport.mqtt_client import LastWill, Message, MqttClient, MqttOptions

__all__ = ["SiteFleet"]

log = logging.getLogger(__name__)


class SiteFleet:
    """Many simulated robots, one MQTT client each; a thread advances their work and sends their state."""

    def __init__(self, *, host: str, port: int, records: SiteRobotRecords, robots: list[TaskRobot],
                 work_s: float = 0.05, state_period_s: float = 0.5) -> None:
        self.host, self.port, self.records = host, port, records
        self.topics = records.topics
        self.robots = {r.robot_id: r for r in robots}
        self.state_period_s = state_period_s
        for robot in robots:
            robot.work.work_s = work_s
        self.received: list[Received] = []
        self.bad_commands = 0
        self.dropped = 0  # records not sent: the robot's in-flight window was full (its broker gone)
        self._lock = threading.Lock()
        self._clients: dict[str, MqttClient] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> SiteFleet:
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
        for client in self._clients.values():
            client.close()  # a dropped robot's client is closed already

    def drop(self, robot_id: str) -> None:
        """The robot's connection dies (no DISCONNECT) and stays down: the broker publishes its Last Will,
        presence offline."""
        with self._lock:
            robot = self.robots[robot_id]
            robot.online = False
        self._clients[robot_id].close(disconnect=False)

    def silence(self, robot_id: str) -> None:
        """The robot stays connected (its presence says online) but sends nothing more: only the coordinator's
        timeout (`robot_offline_after_s`) tells it is gone."""
        with self._lock:
            self.robots[robot_id].online = False

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def publish_raw(self, robot_id: str, channel: str, stream: str, payload: bytes) -> None:
        """Publish any bytes on one of a robot's topics (malformed-input tests)."""
        self._publish(robot_id, self.topics.robot(robot_id, channel, stream), payload)

    def _connect(self, robot: TaskRobot, timeout_s: float) -> None:
        """Connect (LinkError naming the broker if it does not answer), subscribe to the robot's commands, then
        say online on its retained presence; the Last Will says offline when the connection dies."""
        presence = self.topics.presence(robot.robot_id)
        will = LastWill(presence, presence_payload(robot.robot_id, "offline", "connection lost"), qos=1, retain=True)
        options = MqttOptions(host=self.host, port=self.port, client_id=f"sim-{self.topics.fleet}-{robot.robot_id}",
                              keepalive_s=30, will=will, connect_timeout_s=timeout_s)

        online = presence_payload(robot.robot_id, "online", "connected")
        subscribed = threading.Event()

        def on_message(message: Message) -> None:
            try:
                self._command(robot, message.payload)
            except Exception:  # a bad command is counted; the robot goes on
                self.bad_commands += 1
                log.exception("simulated robot %s: cannot handle a command", robot.robot_id)

        def on_connect(_session_present: bool) -> None:
            if subscribed.is_set():  # a reconnect: the client re-subscribes first, then this says online again
                self._publish(robot.robot_id, presence, online, retain=True)

        client = MqttClient(options, on_message=on_message, auto_ack=True, on_connect=on_connect)
        self._clients[robot.robot_id] = client
        client.start()
        try:
            client.subscribe([self.topics.command(robot.robot_id)], qos=1, timeout_s=timeout_s)
            subscribed.set()
            client.publish(presence, online, qos=1, retain=True, timeout_s=timeout_s)
        except Exception:
            client.close(disconnect=False)
            raise
        robot.online = True

    def _publish(self, robot_id: str, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """QoS 1 from the robot's client, never waiting (a full window would stall the threads that hold the lock)."""
        try:
            self._clients[robot_id].publish(topic, payload, qos=1, retain=retain, timeout_s=0)
        except LinkBusy:
            self.dropped += 1
            log.warning("simulated robot %s: in-flight window full; a record on %s dropped (%d so far)", robot_id,
                        topic, self.dropped)

    def _command(self, robot: TaskRobot, payload: bytes) -> None:
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

    def _report(self, robot: TaskRobot, reports: list[Report]) -> None:
        for report in reports:
            robot.seq += 1
            record = self.records.status_record(robot_id=robot.robot_id, task_id=report.task_id, state=report.state,
                                                seq=robot.seq, now_ns=time.time_ns(), reason=report.reason,
                                                progress=report.progress)
            self._publish(robot.robot_id, self.topics.robot(robot.robot_id, "event", "task_status"), record)

    def _state(self, robot: TaskRobot) -> None:
        robot.seq += 1
        now = time.time_ns()
        body = robot_state_body(robot.robot_id, robot.kind, robot.capabilities, x=robot.x, y=robot.y,
                                battery=robot.battery, mode=2 if robot.work.current else 1,
                                current_task_id=robot.work.current, now_ns=now)
        self._publish(robot.robot_id, self.topics.robot(robot.robot_id, "state", "robot_state"),
                      self.records.state_record(body, seq=robot.seq, now_ns=now))

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
