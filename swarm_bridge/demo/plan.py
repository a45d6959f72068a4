"""Who is who in the fleet demo: which robot replays which bag, what kind of robot it is, and its bridge config.

Pure values: the demo (demo/fleet.py) runs them, tests check them without ROS or brokers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm_bridge.demo.errors import DemoSettingError

__all__ = ["EXECUTORS", "KINDS", "TASK_MODES", "VDA_ACTIONS", "VDA_FLEET", "VDA_KINDS", "VDA_SIMS", "DemoRobot",
           "DemoVehicle", "TaskMode", "TaskPlan", "action_tasks", "bridge_config", "fleet_of", "stream_name",
           "task_plan", "vda_vehicle_config"]

FLEET = "demo"

# A heterogeneous fleet: kind -> the task kinds it can do.
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("amr", ("navigate", "pick")),
    ("drone", ("fly", "inspect")),
    ("arm", ("pick", "place")),
)


# How a demo robot carries out its tasks: a reference task executor on its task topics, or its robot bridge
# through a ROS 2 action (NavigateToPose, served by a simulated navigator).
EXECUTORS = ("reference", "actions")


@dataclass(frozen=True)
class DemoVehicle:
    """A VDA 5050 vehicle of the demo, driven by the coordinator's master control: its names (robot id
    `manufacturer/serial`), kind, task kinds, where it starts, and how it is simulated (a key of VDA_SIMS)."""

    manufacturer: str
    serial: str
    kind: str
    capabilities: tuple[str, ...]
    sim: str
    x: float = 0.0
    y: float = 0.0

    @property
    def robot_id(self) -> str:
        return f"{self.manufacturer}/{self.serial}"

    @property
    def ros_id(self) -> str:
        """The robot id of its robot bridge (a ROS robot behind the bridge's VDA 5050 profile)."""
        return self.serial.replace("-", "_")


# How a demo VDA 5050 vehicle is simulated -> what the report calls it.
VDA_SIMS = {
    "ros": "ROS robot: robot bridge's vda5050 profile + simulated navigator (NavigateToPose)",
    "plain": "plain VDA 5050 vehicle, no ROS (swarm_bridge.sim.vda_fleet)",
}
# The VDA 5050 vehicles' kinds -> task kinds (no swarm_bridge robot of the demo does these, so the tasks go to them).
VDA_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (("tug", ("tow",)), ("agv", ("transport", "lift")))
# Task kind -> the VDA 5050 actionType run on the goal node (the coordinator's vda5050.actions); others only drive.
VDA_ACTIONS = {"tow": "hitch", "lift": "lift"}
# A mixed fleet: a ROS robot as a VDA 5050 vehicle, and two plain VDA 5050 vehicles.
VDA_FLEET = (
    DemoVehicle("swarm_bridge", "tug-000", "tug", ("tow",), "ros"),
    DemoVehicle("acme", "agv-001", "agv", ("transport", "lift"), "plain", x=2.0),
    DemoVehicle("acme", "agv-002", "agv", ("transport", "lift"), "plain", x=4.0),
)


@dataclass(frozen=True)
class TaskMode:
    """One `--tasks` mode: how the bag robots carry out their tasks (a key of EXECUTORS), and the VDA 5050
    vehicles that join their fleet."""

    executor: str
    vehicles: tuple[DemoVehicle, ...] = ()


# `--tasks MODE[:N]` -> its mode; a plain number N is the reference mode.
TASK_MODES = {
    "reference": TaskMode("reference"),
    "actions": TaskMode("actions"),
    "vda5050": TaskMode("reference", VDA_FLEET),
}


@dataclass(frozen=True)
class TaskPlan:
    """`--tasks`: how many tasks (None: 2 per robot or vehicle), which executor carries them out on the bag robots,
    and the VDA 5050 vehicles beside them."""

    count: int | None = None
    executor: str = "reference"
    vehicles: tuple[DemoVehicle, ...] = ()


def task_plan(text: str | None) -> TaskPlan:
    """`--tasks N`, `--tasks MODE` or `--tasks MODE:N` (MODE a key of TASK_MODES) -> TaskPlan; DemoSettingError
    naming the forms."""
    if text is None:
        return TaskPlan()
    name, _, count = text.partition(":") if not text.isdigit() else ("reference", "", text)
    mode = TASK_MODES.get(name)
    if mode is None or (count and not count.isdigit()):
        raise DemoSettingError(f"--tasks {text!r}: expected a number of tasks, or one of {', '.join(TASK_MODES)} "
                               "(2 tasks per robot) optionally with :N. Fix: e.g. --tasks 10, --tasks actions, "
                               "--tasks actions:6, --tasks vda5050")
    return TaskPlan(int(count) if count else None, mode.executor, mode.vehicles)


def action_tasks(robot: DemoRobot) -> dict[str, Any]:
    """The bridge's tasks section for a demo robot whose tasks run through actions: each of its task kinds a
    NavigateToPose goal to the task's target (the demo's navigator drives there), progress from the distance."""
    navigate = {"action": "/{robot_id}/navigate_to_pose", "type": "nav2_msgs/action/NavigateToPose",
                "goal": {"pose.header.frame_id": "target.frame", "pose.pose.position.x": "target.x",
                         "pose.pose.position.y": "target.y"},
                "progress": {"remaining": "distance_remaining"}, "result_reason": ["error_code", "error_msg"]}
    return {"actions": {kind: navigate for kind in robot.capabilities}, "progress_max_hz": 4}


@dataclass(frozen=True)
class DemoRobot:
    """One robot of the demo: id, kind and capabilities, and the bags it replays as its own sensors."""

    robot_id: str
    kind: str
    capabilities: tuple[str, ...]
    bags: tuple[Path, ...]


def fleet_of(bags: Sequence[Path], robots: int | None = None) -> list[DemoRobot]:
    """`robots` robots (default: one per bag); bags are dealt round-robin, so each is replayed by at least one
    robot, and robots beyond the number of bags replay a bag again. Kinds cycle amr, drone, arm."""
    if not bags:
        raise DemoSettingError("no bags to replay. Fix: pass --bags DIR, a folder of .bag, .mcap or rosbag2 folders")
    count = len(bags) if robots is None else robots
    if count < 1:
        raise DemoSettingError(f"--robots must be >= 1 (got {count}). Fix: give --robots 1 or more, or leave it out "
                               "for one robot per bag")
    dealt: list[list[Path]] = [[] for _ in range(count)]
    for index, bag in enumerate(bags):
        dealt[index % count].append(bag)
    for index in range(len(bags), count):
        dealt[index].append(bags[index % len(bags)])
    fleet = []
    for index, own in enumerate(dealt):
        kind, capabilities = KINDS[index % len(KINDS)]
        fleet.append(DemoRobot(f"{kind}_{index:03d}", kind, capabilities, tuple(own)))
    return fleet


_NOT_STREAM = re.compile(r"[^a-z0-9_]+")


def stream_name(topic: str) -> str:
    """A bag topic as a stream name (`[a-z0-9_]+`): `/turtle1/pose` -> `turtle1_pose`, `/tf` -> `tf`."""
    name = _NOT_STREAM.sub("_", topic.lower()).strip("_")
    return name or "root"


def bridge_config(robot: DemoRobot, topics: Sequence[tuple[str, str, bool]], *, host: str, port: int,
                  spool: Path, registry: str, fmt: str = "avro", tasks: dict[str, Any] | None = None) -> dict[str, Any]:
    """The robot bridge config of one demo robot: every replayed topic `(name, ros_type, latched)` up as
    telemetry, its RobotState and TaskStatus up, TaskCommand down; MQTT uplink; `tasks`: its tasks section
    (action_tasks) when the bridge carries its tasks out through actions."""
    routes: list[dict[str, Any]] = []
    taken: set[str] = {"robot_state", "task_status", "task_command"}
    for name, ros_type, _latched in topics:
        stream = stream_name(name)
        while stream in taken:
            stream += "_"
        taken.add(stream)
        # transient_local both ways (the replay publishes so too): what is published before the bridge has
        # matched the publisher still reaches it; a volatile reader would miss it on a busy machine
        routes.append({"topic": f"/{robot.robot_id}{name}", "type": ros_type, "channel": "telemetry",
                       "stream": stream, "qos": "transient_local", "qos_depth": 10000, "format": fmt,
                       "priority": 0})
    routes += [
        {"topic": f"/{robot.robot_id}/robot_state", "type": "swarm_bridge_msgs/msg/RobotState", "channel": "state",
         "stream": "robot_state", "qos": "reliable", "format": fmt, "priority": 5},
        {"topic": f"/{robot.robot_id}/task_status", "type": "swarm_bridge_msgs/msg/TaskStatus", "channel": "event",
         "stream": "task_status", "qos": "reliable", "format": fmt, "priority": 9},
        {"topic": f"/{robot.robot_id}/task_command", "type": "swarm_bridge_msgs/msg/TaskCommand",
         "direction": "down", "channel": "command", "stream": "task_command", "qos": "reliable", "format": fmt},
    ]
    config = {
        "robot_id": robot.robot_id, "fleet": FLEET, "registry": registry,
        "uplink": {"kind": "mqtt", "host": host, "port": port},
        "spool": {"path": str(spool), "max_mb": 256},
        "routes": routes,
    }
    return {**config, "tasks": tasks} if tasks is not None else config


def vda_vehicle_config(vehicle: DemoVehicle, *, host: str, port: int, spool: Path, registry: str,
                       interface: str = "uagv", schemas: str | None = None) -> dict[str, Any]:
    """The robot bridge config of a ROS robot that is a VDA 5050 vehicle: its `vda5050` section drives it to each
    node through NavigateToPose (the demo's navigator), runs each of its kinds' actionTypes through the same action
    (behavior_tree: the actionType), and takes its position from the navigator's RobotState; its one route sends
    that RobotState up as telemetry (the coordinator drives it as a VDA 5050 vehicle, not by TaskCommand)."""
    goal = {"pose.header.frame_id": "target.frame", "pose.pose.position.x": "target.x",
            "pose.pose.position.y": "target.y", "pose.pose.orientation": "target.yaw"}
    node = {"action": "/{robot_id}/navigate_to_pose", "type": "nav2_msgs/action/NavigateToPose", "goal": goal,
            "server_timeout_s": 20}
    actions = {action: {**node, "goal": {**goal, "behavior_tree": {"value": action}}}
               for kind in vehicle.capabilities if (action := VDA_ACTIONS.get(kind))}
    vda: dict[str, Any] = {
        "interface_name": interface, "manufacturer": vehicle.manufacturer, "serial_number": vehicle.serial,
        "node": node, "actions": actions, "keepalive_s": 5, "state_period_s": 5.0, "visualization_hz": 2,
        "speed_max_mps": 1.5, "position": {"topic": "/{robot_id}/robot_state",
                                           "type": "swarm_bridge_msgs/msg/RobotState"},
    }
    if schemas is not None:
        vda["schemas"] = schemas
    return {
        "robot_id": vehicle.ros_id, "fleet": FLEET, "registry": registry,
        "uplink": {"kind": "mqtt", "host": host, "port": port},
        "spool": {"path": str(spool), "max_mb": 64},
        "routes": [{"topic": f"/{vehicle.ros_id}/robot_state", "type": "swarm_bridge_msgs/msg/RobotState",
                    "channel": "telemetry", "stream": "robot_state", "qos": "reliable", "format": "avro",
                    "priority": 5, "mqtt_qos": 0}],  # read by no hub in the demo: QoS 0, no broker drop to warn of
        "vda5050": vda,
    }
