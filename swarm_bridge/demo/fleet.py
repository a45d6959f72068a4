"""The fleet demo: real bags replayed as robots, their bridges, an MQTT broker, and what arrived, stream by stream.

Each robot replays its own bags (demo/plan.py deals them) under `/<robot_id>/...`; its robot bridge sends every
replayed topic up as telemetry, and a tap on the broker reads back what arrived. Publish times are kept per stream,
so the n-th record of a stream (its seq) gives the latency of the n-th message replayed on it.
"""

from __future__ import annotations

import heapq
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from swarm_bridge.brokers.errors import BrokerError
from swarm_bridge.brokers.process import ServiceProcess
from swarm_bridge.codec.envelope import SEQ_MASK
from swarm_bridge.codec.records import RecordCodec, record_codec
from swarm_bridge.config import CoordinatorConfig, RobotBridgeConfig, validate_config
from swarm_bridge.coordinator.site.runner import SiteCoordinator
from swarm_bridge.demo.delivery import DeliveryTap, WatchedStream, body_digest
from swarm_bridge.demo.errors import DemoError
from swarm_bridge.demo.plan import (
    FLEET,
    KINDS,
    VDA_ACTIONS,
    VDA_KINDS,
    DemoRobot,
    DemoVehicle,
    action_tasks,
    bridge_config,
    vda_vehicle_config,
)
from swarm_bridge.demo.vda import VdaWire, vda_figures
from swarm_bridge.errors import SwarmBridgeError
from swarm_bridge.replay import Bag, BagMessage, BagTopic, Due, ReplayTally, ReplayTypes, merged, schedule
from swarm_bridge.ros.context import Context, Node, new_node
from swarm_bridge.ros.navigator import SimNavigator
from swarm_bridge.ros.replay import RosReplay
from swarm_bridge.ros.spin import make_executor, spin_until
from swarm_bridge.ros.task_executor import TaskExecutor
from swarm_bridge.ros.types import RosTypeError, message_class
from swarm_bridge.routing import routes_for
from swarm_bridge.sim.vda_fleet import SimVehicle, VdaFleet
from swarm_bridge.vda5050 import OfficialSchemas, SchemasMissing, Vda5050Topics

__all__ = ["DemoError", "FleetDemo", "StreamTally"]

log = logging.getLogger(__name__)

PAUSE_S = 1.0  # how long the demo pauses a VDA 5050 vehicle (startPause ... stopPause)


@dataclass
class StreamTally:
    """One robot's replayed topic end to end: in the bag, published on ROS, arrived at the broker, and when."""

    robot_id: str
    bag_topic: str
    ros_type: str
    stream: str
    destination: str
    in_bag: int = 0
    published: int = 0
    published_ns: list[int] = field(default_factory=list)  # time.time_ns() of each publish, in order
    published_cdr: list[bytes] = field(default_factory=list)  # what was published, in order
    content_mismatch: int = 0  # delivered records whose body differs from what was published as that seq
    arrived: set[int] = field(default_factory=set)  # n of each record (seq & SEQ_MASK)
    duplicates: int = 0
    undecodable: int = 0
    latency_ns: list[int] = field(default_factory=list)
    arrival_ns: list[int] = field(default_factory=list)
    samples: list[tuple[int, int]] = field(default_factory=list)  # (arrival_ns, latency_ns)

    @property
    def complete(self) -> bool:
        return len(self.arrived) == self.published and self.published == self.in_bag


def _reference(node: Node, robot: DemoRobot) -> object:
    return TaskExecutor(node, robot.robot_id, robot_kind=robot.kind, capabilities=robot.capabilities, work_s=0.5)


def _navigator(node: Node, robot: DemoRobot) -> object:
    return SimNavigator(node, robot.robot_id, robot_kind=robot.kind, capabilities=robot.capabilities, speed_mps=1.5)


# The ROS side that does a demo robot's tasks, by executor (demo.plan.EXECUTORS): the reference task executor
# answering TaskCommand, or a simulated navigator serving the actions the robot's bridge sends goals to.
TASK_SIDES = {"reference": _reference, "actions": _navigator}


@dataclass(frozen=True)
class TaskTrace:
    """One submitted task as the coordinator saw it: its robot, its state, the progress values it went through."""

    task_id: str
    robot_id: str
    state: str
    progress: tuple[float, ...]


class FleetDemo:
    """The robots of `fleet`, each with a replay of its bags, a robot bridge and the ROS side of its tasks (a
    reference task executor, or with `executor` "actions" a navigator its bridge drives through actions); and the
    VDA 5050 `vehicles` beside them, driven by the coordinator's VDA 5050 master control (`vda_schemas`: the
    official JSON Schemas every VDA 5050 message is checked against, when given)."""

    def __init__(self, context: Context, fleet: Sequence[DemoRobot], *, mqtt_host: str, mqtt_port: int,
                 registry: str, work_dir: Path, rate: float, domain_id: int, kafka: str | None = None,
                 types: ReplayTypes | None = None, executor: str = "reference",
                 vehicles: Sequence[DemoVehicle] = (), vda_schemas: Path | None = None) -> None:
        self.context, self.fleet = context, list(fleet)
        self.vehicles = list(vehicles)
        self.vda_schemas = vda_schemas
        self.vda_topics = Vda5050Topics()
        self.vda_wire: VdaWire | None = None
        self.vda_fleet: VdaFleet | None = None
        self.vehicle_bridges: dict[str, subprocess.Popen[bytes]] = {}  # robot id -> the bridge of a ROS vehicle
        self.pauses: list[dict[str, Any]] = []  # the VDA 5050 vehicle paused and resumed (site mode)
        self._pausing: tuple[str, str, float] | None = None  # (robot id, task id, since): paused now
        self.mqtt_host, self.mqtt_port = mqtt_host, mqtt_port
        self.registry, self.work_dir, self.rate = registry, work_dir, rate
        self.kafka = kafka
        self.types = types or ReplayTypes()
        self.tally = ReplayTally()
        self.streams: dict[tuple[str, str], StreamTally] = {}  # (robot_id, destination) -> tally
        self.bridges: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id),
                    "ROS_AUTOMATIC_DISCOVERY_RANGE": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")}
        self.executor = executor
        self.executors: list[object] = []
        self.traces: dict[str, TaskTrace] = {}  # task id -> what the coordinator said of it, polled
        self._watch: threading.Thread | None = None
        self._tracing = threading.Lock()
        self.configs: list[RobotBridgeConfig] = []
        self._stack = ExitStack()
        self._nodes: list[Node] = []
        self._bags: dict[str, list[Bag]] = {}
        self._replays: dict[str, RosReplay] = {}
        self._by_topic: dict[tuple[str, str], StreamTally] = {}  # (robot_id, bag topic) -> tally
        self._stop = threading.Event()
        self._spinner: threading.Thread | None = None
        self.tap: DeliveryTap | None = None
        self._codecs: dict[str, RecordCodec] = {}
        self.services: dict[str, ServiceProcess] = {}  # gateway, coordinator
        self._restartable: dict[str, tuple[list[str], Path, str]] = {}
        self.restarts: dict[str, int] = {}
        self.coordinator_config: CoordinatorConfig | None = None
        self.site: SiteCoordinator | None = None
        self.task_ids: list[str] = []
        self.lag_ns: list[int] = []  # per publish: how late it left against the schedule scaled by the rate

    def __enter__(self) -> FleetDemo:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open every robot's bags, start its bridge and executor, tap the broker, and spin ROS in the background."""
        if self.vehicles:  # first: the tap sees every VDA 5050 message of the run
            try:
                schemas = OfficialSchemas(self.vda_schemas) if self.vda_schemas is not None else None
            except SchemasMissing as exc:
                raise DemoError(f"--vda5050-schemas: {exc}") from exc
            self.vda_wire = VdaWire(host=self.mqtt_host, port=self.mqtt_port, topics=self.vda_topics, schemas=schemas)
            self._stack.callback(self.vda_wire.close)
        if self.kafka:
            self._coordinator()  # first: it creates the sharded topics the gateway then writes to
            self._gateway()
        else:
            self._site_coordinator()
        replay_node = self._node("fleet_replay")
        for robot in self.fleet:
            bags = [self._stack.enter_context(Bag(path, self.types)) for path in robot.bags]
            self._bags[robot.robot_id] = bags
            topics = _replayable(bags)
            config = validate_config(bridge_config(
                robot, [(t.name, t.ros_type, t.latched) for t in topics], host=self.mqtt_host, port=self.mqtt_port,
                spool=self.work_dir / robot.robot_id / "spool.db", registry=self.registry,
                tasks=action_tasks(robot) if self.executor == "actions" else None),
                RobotBridgeConfig, source=f"<demo {robot.robot_id}>")
            self.configs.append(config)
            self._bridge(robot, config, topics)
            every = {t.name: t for b in reversed(bags) for t in b.topics.values() if t.count}  # first bag's wins
            self._replays[robot.robot_id] = RosReplay(replay_node, every.values(), [robot.robot_id], self.tally,
                                                      durable=True)
            executor_node = self._node(f"task_executor_{robot.robot_id}")
            self.executors.append(TASK_SIDES[self.executor](executor_node, robot))
        self._vda_vehicles()
        watched = [WatchedStream(t.destination, t.ros_type, "avro") for t in self.streams.values()]
        self.tap = DeliveryTap(host=self.mqtt_host, port=self.mqtt_port, registry=self.registry, streams=watched,
                               kafka=self.kafka)
        self._stack.callback(self.tap.close)
        executor = make_executor(self.context)
        self._spinner = threading.Thread(target=spin_until, args=(executor, self._nodes),
                                         kwargs={"done": self._stop.is_set}, name="demo-spin", daemon=True)
        self._spinner.start()

    def renamed(self) -> dict[str, str]:
        """Bag topics replayed under another name, as ROS 2 requires: {name in the bag: ROS 2 name}."""
        return {t.recorded: t.name for bags in self._bags.values() for bag in bags for t in bag.topics.values()
                if t.recorded and not t.skip}

    def converted(self) -> dict[str, str]:
        """Bag topics whose messages are migrated to the installed definition: {topic: what changed}."""
        return {t.name: t.converted for bags in self._bags.values() for bag in bags for t in bag.topics.values()
                if t.converted and not t.skip}

    def _coordinator_doc(self) -> dict[str, Any]:
        """The coordinator config both modes share: the demo fleet's capabilities, short timeouts; with VDA 5050
        vehicles its vda5050 section (their manufacturers and kinds, the actionType of each task kind)."""
        kinds = KINDS + (VDA_KINDS if self.vehicles else ())
        doc: dict[str, Any] = {
            "fleet": FLEET, "robot_format": "avro", "registry": self.registry,
            "capabilities": {kind: list(capabilities) for kind, capabilities in kinds},
            "tasks": {"accept_timeout_s": 30.0, "run_timeout_s": 120.0, "max_attempts": 3,
                      "robot_offline_after_s": 10.0},
        }
        if self.vehicles:
            doc["vda5050"] = {
                "interface_name": self.vda_topics.interface_name, "major_version": self.vda_topics.major_version,
                "manufacturers": {v.manufacturer: v.kind for v in self.vehicles},
                "actions": {kind: action for kind, action in VDA_ACTIONS.items()
                            if any(kind in v.capabilities for v in self.vehicles)},
                **({"schemas": str(self.vda_schemas)} if self.vda_schemas is not None else {}),
            }
        return doc

    def _vda_vehicles(self) -> None:
        """Start the VDA 5050 vehicles: each ROS one a robot bridge with a vda5050 section in front of a simulated
        navigator, the plain ones in one simulated fleet (no ROS) on the broker."""
        plain: list[SimVehicle] = []
        for vehicle in self.vehicles:
            if vehicle.sim == "ros":
                self._vda_robot(vehicle)
            else:
                plain.append(SimVehicle(vehicle.manufacturer, vehicle.serial,
                                        tuple(a for k in vehicle.capabilities if (a := VDA_ACTIONS.get(k))),
                                        x=vehicle.x, y=vehicle.y))
        if plain:
            self.vda_fleet = VdaFleet(plain, host=self.mqtt_host, port=self.mqtt_port,
                                      interface=self.vda_topics.interface_name,
                                      major_version=self.vda_topics.major_version).start()
            self._stack.callback(self.vda_fleet.stop)

    def _vda_robot(self, vehicle: DemoVehicle) -> None:
        """A ROS robot as a VDA 5050 vehicle: its navigator here, its robot bridge (vda5050 section) a process."""
        folder = self.work_dir / vehicle.ros_id
        folder.mkdir(parents=True, exist_ok=True)
        doc = vda_vehicle_config(vehicle, host=self.mqtt_host, port=self.mqtt_port, spool=folder / "spool.db",
                                 registry=self.registry, interface=self.vda_topics.interface_name,
                                 schemas=str(self.vda_schemas) if self.vda_schemas is not None else None)
        validate_config(doc, RobotBridgeConfig, source=f"<demo {vehicle.ros_id}>")
        self.executors.append(SimNavigator(self._node(f"navigator_{vehicle.ros_id}"), vehicle.ros_id,
                                           robot_kind=vehicle.kind, capabilities=vehicle.capabilities,
                                           speed_mps=1.5))
        path = folder / "robot_bridge.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        log_file = (folder / "robot_bridge.log").open("w")
        self._stack.callback(log_file.close)
        process = subprocess.Popen([sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge", "--config", str(path)],
                                   stdout=log_file, stderr=subprocess.STDOUT, env=self.env)
        self._stack.callback(_stop, process)
        self.vehicle_bridges[vehicle.ros_id] = process

    def vda_report(self) -> dict[str, Any] | None:
        """The report's VDA 5050 section (demo.vda.vda_figures); None without VDA 5050 vehicles."""
        if self.vda_wire is None:
            return None
        traces = [{"robot_id": t.robot_id, "state": t.state} for t in self.traces.values()]
        return {**vda_figures(self.vda_wire.collect(), self.vehicles, traces,
                              str(self.vda_schemas) if self.vda_schemas is not None else None),
                "pauses": list(self.pauses)}

    def _site_coordinator(self) -> None:
        """A single-site coordinator in this process, straight on the MQTT broker (no Kafka)."""
        doc = {**self._coordinator_doc(), "mode": "mqtt",
               "mqtt": {"host": self.mqtt_host, "port": self.mqtt_port, "client_id": "demo-coordinator",
                        "session_expiry_s": 0}}
        self.coordinator_config = validate_config(doc, CoordinatorConfig, source="<demo coordinator>")
        self.site = SiteCoordinator(self.coordinator_config).start()
        self._stack.callback(self.site.stop)

    def _coordinator(self, timeout_s: float = 60.0) -> None:
        """Start a fleet coordinator instance on Kafka, with the demo fleet's capabilities."""
        assert self.kafka is not None
        host, _, port = self.kafka.rpartition(":")
        folder = self.work_dir / "coordinator"
        folder.mkdir(parents=True, exist_ok=True)
        # A demo machine runs the whole fleet on a few cores: give Kafka transactions time (a transaction that
        # times out fences the instance, which then exits and is restarted by `check_services`).
        doc = {**self._coordinator_doc(), "shards": 4,
               "kafka": {"host": host, "port": int(port), "group": "demo-coordinator", "instance_id": "demo-coord-1",
                         "session_timeout_s": 30.0, "transaction_timeout_s": 60.0}}
        self.coordinator_config = validate_config(doc, CoordinatorConfig, source="<demo coordinator>")
        path = folder / "coordinator.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self._service("coordinator", ["coordinator", "--config", str(path)], folder, "owns shards", timeout_s)
        self._restartable["coordinator"] = (["coordinator", "--config", str(path)], folder, "owns shards")

    def check_services(self) -> None:
        """Restart a coordinator that exited (as a supervisor would: it rebuilds its shards from the event log
        on start); counted in `restarts` and reported."""
        for name, (args, folder, ready) in self._restartable.items():
            process = self.services.get(name)
            if process is not None and not process.running:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.warning("demo: the %s exited (status %s); restarting it (restart %d)", name, process.returncode,
                            self.restarts[name])
                self._service(name, args, folder, ready, 60.0)

    def _service(self, name: str, args: list[str], folder: Path, ready: str, timeout_s: float) -> None:
        """Run `swarm-bridge <args>` with its log in `folder` (appended to, by a restart); wait until this run's
        log says `ready`."""
        process = ServiceProcess(name=name, run_dir=folder, argv=[sys.executable, "-m", "swarm_bridge.cli", *args],
                                 env=self.env, cwd=Path.cwd())
        process.start()
        self._stack.callback(process.stop, 15.0)
        try:
            process.wait_for_line(ready, timeout_s)
        except BrokerError as err:
            raise DemoError(f"the {name} did not start (see {process.log_path}):\n{process.log_tail(15)}") from err
        self.services[name] = process

    def submit_tasks(self, count: int) -> list[str]:
        """Submit `count` tasks, their kinds taken in turn from the capabilities of the robots, then the VDA 5050
        vehicles; returns their ids."""
        if not count or self.coordinator_config is None:
            return []
        from swarm_bridge.coordinator.kafka.snapshot import submit_tasks

        docs: list[dict[str, Any]] = []
        members = [r.capabilities for r in self.fleet] + [v.capabilities for v in self.vehicles]
        for index in range(count):
            capabilities = members[index % len(members)]
            kind = capabilities[(index // len(members)) % len(capabilities)]
            docs.append({"task_id": f"demo-task-{index:04d}", "kind": kind,
                         "target": {"x": float(index % 7), "y": float(index % 5), "frame_id": "map"},
                         "priority": 1 + index % 5})
        if self.site is not None:
            refused = [f"{doc['task_id']}: {answer.reason}" for doc in docs
                       if not (answer := self.site.submit(doc)).accepted]
            if refused:
                log.warning("demo: tasks refused: %s", "; ".join(refused))
        else:
            submit_tasks(self.coordinator_config, docs)
        self.task_ids = [str(doc["task_id"]) for doc in docs]
        if self.site is not None:  # in memory: cheap to poll while the replay runs (Kafka: in wait_tasks only)
            self._watch = threading.Thread(target=self._trace_tasks, name="demo-tasks", daemon=True)
            self._watch.start()
        return self.task_ids

    def _tasks(self) -> dict[str, Any]:
        """The submitted tasks as the coordinator has them now (site: in memory; Kafka: its event log)."""
        if self.coordinator_config is None:
            return {}
        from swarm_bridge.coordinator.kafka.snapshot import read_snapshot

        find = self.site.task if self.site is not None else read_snapshot(self.coordinator_config).book.get
        return {task_id: task for task_id in self.task_ids if (task := find(task_id)) is not None}

    def _trace_tasks(self) -> None:
        """Poll the site coordinator's view of every submitted task until all ended: state and progress steps;
        on the way, pause one VDA 5050 vehicle once (`_pause_step`)."""
        while not self._stop.is_set():
            ended = self._trace_once()
            self._pause_step()
            if ended and self._pausing is None:
                return
            self._stop.wait(0.1)

    def _pause_step(self) -> None:
        """Site mode: the first plain VDA 5050 vehicle is paused (startPause) once while a task of it runs, and
        resumed (stopPause) PAUSE_S later; its task goes on to the end. The report lists it under `pauses`."""
        if self.site is None or self.pauses:
            return
        now = time.monotonic()
        try:
            if self._pausing is None:
                robot_id = next((v.robot_id for v in self.vehicles if v.sim == "plain"), None)
                task = next((t for t in self.traces.values() if t.robot_id == robot_id
                             and t.state in ("accepted", "running")), None)
                if robot_id is not None and task is not None:
                    self.site.pause(robot_id, True)
                    self._pausing = (robot_id, task.task_id, now)
            elif now - self._pausing[2] >= PAUSE_S:
                robot_id, task_id, since = self._pausing
                self.site.pause(robot_id, False)
                self._pausing = None
                self.pauses.append({"robot_id": robot_id, "task_id": task_id, "paused_s": round(now - since, 1)})
        except SwarmBridgeError as exc:  # the broker gone: the demo goes on without its pause
            log.warning("demo: pausing a VDA 5050 vehicle failed: %s", exc)
            self.pauses.append({"failed": str(exc)})

    def _trace_once(self) -> bool:
        """One look at the submitted tasks, their progress steps noted; whether all ended."""
        with self._tracing:
            ended = 0
            for task_id, task in self._tasks().items():
                old = self.traces.get(task_id)
                steps = old.progress if old is not None else ()
                if not steps or steps[-1] != round(task.progress, 2):
                    steps = (*steps, round(task.progress, 2))
                self.traces[task_id] = TaskTrace(task_id, task.robot_id, task.state.value, steps)
                ended += task.state.value in ("done", "failed", "cancelled", "rejected")
            return ended == len(self.task_ids)

    def task_states(self) -> dict[str, int]:
        """How many of the submitted tasks are in each state, as the coordinators' event log says."""
        if self.coordinator_config is None or not self.task_ids:
            return {}
        self._trace_once()
        states: dict[str, int] = {}
        for task_id in self.task_ids:
            trace = self.traces.get(task_id)
            state = trace.state if trace is not None else "not seen"
            states[state] = states.get(state, 0) + 1
        return states

    def wait_tasks(self, timeout_s: float) -> dict[str, int]:
        """Wait until every submitted task ended (done, failed, cancelled, rejected); the states at the end."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.check_services()
            states = self.task_states()
            open_ = sum(n for state, n in states.items() if state not in ("done", "failed", "cancelled", "rejected"))
            if not open_ or time.monotonic() > deadline:
                return states  # read with the traces: the report's progress ends where the states do
            time.sleep(1.0)

    def _gateway(self, timeout_s: float = 60.0) -> None:
        """Start an edge gateway (MQTT -> Kafka, commands back) as a hub runs it, and wait until it runs."""
        folder = self.work_dir / "gateway"
        folder.mkdir(parents=True, exist_ok=True)
        up: list[dict[str, Any]] = [
            {"mqtt": "{prefix}/{fleet}/{robot_id}/{channel}/{stream}",
             "where": {"channel": ["telemetry", "event", "state"]},
             "kafka_topic": "fleet.{channel}.{stream}", "key": "{robot_id}"},
            {"mqtt": "{prefix}/{fleet}/{robot_id}/presence/status", "kafka_topic": "fleet.presence.status",
             "payload": "raw"}]
        down: list[dict[str, Any]] = [{"kafka_topic": "fleet.command.task_command",
                                       "mqtt": "{prefix}/{fleet}/{robot_id}/command/task_command"}]
        if self.vehicles and self.coordinator_config is not None and self.coordinator_config.vda5050 is not None:
            vda = self.coordinator_config.vda5050  # the gateway's rules use the coordinator's Kafka topics
            up.append(self._vda_up(vda.kafka_topic))
            down += self._vda_down(vda.kafka_topics())
        config = {"gateway_id": "demo_hub", "fleet": FLEET, "registry": self.registry,
                  "mqtt": {"host": self.mqtt_host, "port": self.mqtt_port}, "kafka": {"bootstrap": self.kafka},
                  "up": up, "down": down}
        path = folder / "edge_gateway.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._service("gateway", ["gateway", "--config", str(path)], folder, "running", timeout_s)

    def _vda_up(self, kafka_topic: str) -> dict[str, Any]:
        """The gateway's up rule for the vehicles' state, connection and factsheet, onto the Kafka topics the
        coordinator's vda5050.kafka_topic names (payload vda5050: the gateway's VDA 5050 format on Kafka)."""
        return {"mqtt": f"{self.vda_topics.interface_name}/{self.vda_topics.major_version}/{{manufacturer}}/"
                        "{robot_id}/{stream}",
                "where": {"stream": ["state", "connection", "factsheet"]}, "kafka_topic": kafka_topic,
                "key": "{manufacturer}/{robot_id}",
                "payload": "vda5050"}

    def _vda_down(self, kafka_topics: dict[str, str]) -> list[dict[str, Any]]:
        """The gateway's down rules: the coordinator's orders and instant actions from Kafka to each vehicle."""
        prefix = f"{self.vda_topics.interface_name}/{self.vda_topics.major_version}"
        return [{"kafka_topic": kafka_topics[name], "mqtt": f"{prefix}/{{robot_id}}/{name}", "payload": "vda5050"}
                for name in ("order", "instantActions")]

    def _node(self, name: str) -> Node:
        node = new_node(name, self.context)
        self._nodes.append(node)
        return node

    def _bridge(self, robot: DemoRobot, config: RobotBridgeConfig, topics: list[BagTopic]) -> None:
        """Start the robot's bridge as `ros2 run` would (its own process, so robots use every core)."""
        folder = self.work_dir / robot.robot_id
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "robot_bridge.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), sort_keys=False))
        log_file = (folder / "robot_bridge.log").open("w")
        self._stack.callback(log_file.close)
        process = subprocess.Popen([sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge", "--config", str(path)],
                                   stdout=log_file, stderr=subprocess.STDOUT, env=self.env)
        self._stack.callback(_stop, process)
        self.bridges.append(process)
        by_ros_topic = {f"/{robot.robot_id}{t.name}": t for t in topics}
        for route in routes_for(config):
            topic = by_ros_topic.get(route.ros_topic)
            if topic is None or route.direction != "up":
                continue
            tally = StreamTally(robot.robot_id, topic.name, topic.ros_type, route.stream, route.destination,
                                in_bag=topic.count)
            self.streams[(robot.robot_id, route.destination)] = tally
            self._by_topic[(robot.robot_id, topic.name)] = tally

    def due_s(self) -> list[float]:
        """When each message that will be published is due at x1, in seconds from the start (a pass over the
        bags without publishing): what the offered rate is computed from."""
        return [due.at_s for robot_id, due in self._plan()
                if not due.message.skip and (robot_id, due.message.topic) in self._by_topic]

    def replay(self, *, wait_s: float = 30.0, progress: bool | None = None) -> float:
        """Wait until the bridges subscribe, then publish every robot's bags on their clock (scaled by the rate);
        returns the seconds the replay took. `lag_ns` gets how late each publish left."""
        lonely: list[str] = []
        self.check_bridges()
        for replay in self._replays.values():
            lonely = replay.wait_for_subscribers(wait_s, self._stop)
            if lonely:
                log.warning("demo: no subscriber yet on %s; replaying anyway", ", ".join(lonely[:5]))
        # A publisher sees its subscriber before the subscriber has matched the publisher; what is published in
        # between is not delivered (volatile durability). One second covers the other half of the handshake.
        self._stop.wait(1.0)
        from tqdm import tqdm

        total = sum(t.in_bag for t in self.streams.values())
        bar: Any = tqdm(total=total, unit="msg", desc="replay", disable=None if progress is None else not progress,
                        dynamic_ncols=True)
        start = time.monotonic()
        rate = self.rate
        try:
            for robot_id, due in self._plan():
                at = start + due.at_s / rate
                delay = at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                late_ns = int((time.monotonic() - at) * 1e9)
                if self._publish(robot_id, due.message):
                    self.lag_ns.append(late_ns)
                bar.update(1)
        finally:
            bar.close()
        return time.monotonic() - start

    def check_bridges(self) -> None:
        """Raise DemoError naming the robot and its log's last lines when a bridge process has exited."""
        every = [*zip((r.robot_id for r in self.fleet), self.bridges, strict=True), *self.vehicle_bridges.items()]
        for robot_id, process in every:
            if process.poll() is not None:
                log_path = self.work_dir / robot_id / "robot_bridge.log"
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise DemoError(f"the robot bridge of {robot_id} exited with status {process.returncode}; "
                                f"{log_path}:\n{tail}")

    def _plan(self) -> Iterator[tuple[str, Due]]:
        """Every robot's schedule at x1, merged by due time (the replay divides by its rate)."""
        def robot_plan(robot_id: str) -> Iterator[tuple[float, int, str, Due]]:
            bags = self._bags[robot_id]
            topics = [t.name for b in bags for t in b.topics.values()]
            for index, due in enumerate(schedule(lambda: merged(bags, topics), rate=1.0)):
                yield due.at_s, index, robot_id, due

        for _at, _index, robot_id, due in heapq.merge(*(robot_plan(r.robot_id) for r in self.fleet)):
            yield robot_id, due

    def _publish(self, robot_id: str, message: BagMessage) -> bool:
        """Publish one message of the robot's bags; True when it went out on a stream the tap watches."""
        tally = self._by_topic.get((robot_id, message.topic))
        now = time.time_ns()
        if not self._replays[robot_id].publish(message) or tally is None:
            return False
        tally.published += 1
        tally.published_ns.append(now)
        tally.published_cdr.append(message.cdr)
        return True

    def drain(self, timeout_s: float) -> bool:
        """Wait until every published message arrived at the broker (or `timeout_s`); True if all did."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.collect()
            self.check_services()
            if all(len(t.arrived) >= t.published for t in self.streams.values()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def collect(self) -> None:
        """Read what reached the tap since the last call into the stream tallies: arrivals by seq, duplicates,
        latency."""
        assert self.tap is not None
        for delivery in self.tap.take():
            robot_id = delivery.destination.split("/")[2]
            tally = self.streams.get((robot_id, delivery.destination))
            if tally is None:
                continue
            if delivery.seq < 0:
                tally.undecodable += 1
                continue
            n = delivery.seq & SEQ_MASK
            if n in tally.arrived:
                tally.duplicates += 1
                continue
            tally.arrived.add(n)
            tally.arrival_ns.append(delivery.arrived_ns)
            if n < len(tally.published_cdr) and delivery.digest != self._expected(tally, n):
                tally.content_mismatch += 1
            if n < len(tally.published_ns):
                latency = delivery.arrived_ns - tally.published_ns[n]
                tally.latency_ns.append(latency)
                tally.samples.append((delivery.arrived_ns, latency))

    def _expected(self, tally: StreamTally, n: int) -> str:
        """The body digest the n-th message published on the stream should arrive with (same codec, decoded)."""
        codec = self._codecs.get(tally.ros_type)
        if codec is None:
            codec = self._codecs[tally.ros_type] = record_codec(tally.ros_type, "avro")
        record = codec.encode_cdr(tally.published_cdr[n], robot_id=tally.robot_id, stream=tally.stream, seq=n,
                                  stamp_ns=0)
        return body_digest(codec.decode(record).body)

    def close(self) -> None:
        """Stop spinning and the bridges; close bags and nodes."""
        self._stop.set()
        if self._watch is not None:
            self._watch.join(10)
        if self._spinner is not None:
            self._spinner.join(10)
        self._stack.close()
        for node in self._nodes:
            node.destroy_node()
        self._nodes.clear()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then wait (the bridge flushes and closes its spool); SIGKILL if it hangs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _replayable(bags: Sequence[Bag]) -> list[BagTopic]:
    """The topics of `bags` that will be published: a known type with an rclpy class, and messages."""
    topics: dict[str, BagTopic] = {}
    for bag in bags:
        for topic in bag.topics.values():
            if topic.skip or not topic.count:
                continue
            seen = topics.get(topic.name)
            if seen is not None:  # the same topic in two bags of one robot: one stream, both bags' messages
                if seen.ros_type == topic.ros_type:
                    topics[topic.name] = replace(seen, count=seen.count + topic.count)
                continue
            try:
                message_class(topic.ros_type)
            except RosTypeError:
                continue
            topics[topic.name] = topic
    return list(topics.values())
