"""Simulated task robots on Kafka, for tests and benchmarks: plain producers and a consumer speaking the fleet's
records. They publish RobotState and presence, take TaskCommands and answer with TaskStatus."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.config.robot import default_registry
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.routing.presence import presence_payload
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.sim.records import KafkaRobotRecords, robot_state_body
from swarm_bridge.sim.task_robots import Received, TaskRobot
from swarm_bridge.transport.kafka_clients import Consumer, Producer, TopicPartition, produce_patiently
from swarm_bridge.transport.kafka_log import kafka_log

__all__ = ["KafkaFleet"]

log = logging.getLogger(__name__)


class KafkaFleet:
    """Many simulated robots in one thread; `received` lists every command they got (committed only). A robot
    accepts every task (`refuse`: rejects all); they run one after the other, each `work_s` long, and a task
    whose id ends in `-fail` fails; a cancelled task it holds is dropped and reported cancelled."""

    def __init__(self, config: CoordinatorConfig, robots: list[TaskRobot], *, work_s: float = 0.0,
                 state_period_s: float = 1.0) -> None:
        self.config = config
        self.robots = {r.robot_id: r for r in robots}
        for robot in robots:
            robot.online = True  # on Kafka a robot is up from the start (presence says so in `start`)
        self.work_s, self.state_period_s = work_s, state_period_s
        self.received: list[Received] = []
        self.bad_commands = 0
        self._lock = threading.Lock()
        bootstrap = config.kafka.servers
        topics = config.topics
        self.topics = topics
        self.records = KafkaRobotRecords(fmt=config.robot_format, registry=config.registry or default_registry(),
                                         subject_name_strategy=config.subject_name_strategy,
                                         state_topic=topics.state, status_topic=topics.status,
                                         commands_topic=topics.commands)
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                                   "logger": kafka_log(log)})
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"sim-{id(self)}",
                                   "isolation.level": "read_committed", "enable.auto.commit": False,
                                   "auto.offset.reset": "earliest", "logger": kafka_log(log)})
        self._consumer.assign([TopicPartition(topics.commands, p, 0) for p in range(config.shards)])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_state = 0.0

    def start(self) -> KafkaFleet:
        """Announce every robot (presence online, state) and start serving commands in a thread."""
        for robot in self.robots.values():
            self._presence(robot, "online", "started")
        self._states()
        self._producer.flush(30)
        self._thread = threading.Thread(target=self._run, name="sim-fleet", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._consumer.close()
        self._producer.flush(10)
        self.records.close()

    def go_offline(self, robot_id: str, reason: str = "connection lost (last will)") -> None:
        """The robot drops off: presence offline, no more state or reports, commands ignored."""
        with self._lock:
            robot = self.robots[robot_id]
            robot.online = False
            robot.queue.clear()
            self._presence(robot, "offline", reason)
        self._producer.flush(10)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def _partition(self, robot_id: str) -> int:
        return shard_of(robot_id, self.config.shards)

    def _presence(self, robot: TaskRobot, state: str, reason: str) -> None:
        self._producer.produce(self.topics.presence, key=robot.robot_id.encode(), partition=self._partition(
            robot.robot_id), value=presence_payload(robot.robot_id, state, reason))

    def _states(self) -> None:
        now = time.time_ns()
        for robot in self.robots.values():
            if not robot.online:
                continue
            robot.seq += 1
            current = robot.queue[0][0] if robot.queue else ""
            body = robot_state_body(robot.robot_id, robot.kind, robot.capabilities, x=robot.x, y=robot.y,
                                    battery=robot.battery, mode=2 if current else 1, current_task_id=current,
                                    now_ns=now)
            self._send(self.topics.state, robot, self.records.state_record(body, seq=robot.seq, now_ns=now))
        self._last_state = time.monotonic()

    def _send(self, topic: str, robot: TaskRobot, value: bytes) -> None:
        produce_patiently(self._producer, topic, value, robot.robot_id.encode(), self._partition(robot.robot_id))

    def _status(self, robot: TaskRobot, task_id: str, state: TaskState, reason: str = "") -> None:
        robot.seq += 1
        now = time.time_ns()
        self._send(self.topics.status, robot, self.records.status_record(
            robot_id=robot.robot_id, task_id=task_id, state=state, seq=robot.seq, now_ns=now, reason=reason,
            progress=1.0 if state is TaskState.DONE else 0.0))

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(num_messages=1000, timeout=0.02):
                if msg.error():
                    continue
                try:
                    self._command(msg.value() or b"", (msg.key() or b"").decode())
                except Exception:  # a bad command is counted; the fleet goes on
                    self.bad_commands += 1
                    log.exception("simulated fleet: cannot handle a command")
            now = time.monotonic()
            with self._lock:
                for robot in self.robots.values():
                    while robot.online and robot.queue and robot.queue[0][1] <= now:
                        task_id, _ = robot.queue.popleft()
                        failing = task_id.endswith("-fail")
                        self._status(robot, task_id, TaskState.FAILED if failing else TaskState.DONE,
                                     "simulated failure" if failing else "")
                        if robot.queue:  # the next one starts now
                            robot.queue[0] = (robot.queue[0][0], now + self.work_s)
                if now - self._last_state >= self.state_period_s:
                    self._states()
            self._producer.poll(0)

    def _command(self, payload: bytes, key: str) -> None:
        body = self.records.command_fields(payload)
        robot_id, task_id = str(body["robot_id"]), str(body["task_id"])
        with self._lock:
            robot = self.robots.get(robot_id)
            if robot is None or not robot.online:
                return
            self.received.append(Received(robot_id, task_id, str(body["command_id"]), int(body["action"]), key))
            if int(body["action"]) == 1:  # CANCEL: a task it holds stops, and it says so (as a robot bridge does)
                held = any(q[0] == task_id for q in robot.queue)
                robot.queue = deque(q for q in robot.queue if q[0] != task_id)
                if held:
                    self._status(robot, task_id, TaskState.CANCELLED, "cancelled by the coordinator")
                return
            if robot.refuse:
                self._status(robot, task_id, TaskState.REJECTED, "refusing all tasks")
                return
            self._status(robot, task_id, TaskState.ACCEPTED)
            self._status(robot, task_id, TaskState.RUNNING)
            start = time.monotonic() if not robot.queue else float("inf")
            robot.queue.append((task_id, start + self.work_s))
