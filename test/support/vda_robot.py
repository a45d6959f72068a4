"""A ROS robot as a VDA 5050 vehicle: a real robot bridge process with a `vda5050` section in front of a simulated
navigator (a real rclpy NavigateToPose server in this process), on a real Mosquitto."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import yaml

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.demo.plan import DemoRobot, bridge_config
from swarm_bridge.ros.context import new_node
from swarm_bridge.ros.navigator import SimNavigator
from swarm_bridge.ros.spin import make_executor, spin_until

NODE_ACTION: dict[str, Any] = {
    "action": "/{robot_id}/navigate_to_pose", "type": "nav2_msgs/action/NavigateToPose",
    "goal": {"pose.header.frame_id": "target.frame", "pose.pose.position.x": "target.x",
             "pose.pose.position.y": "target.y", "pose.pose.orientation": "target.yaw"},
    "server_timeout_s": 20,
}
# actionType `wait_here`: the same navigator, driven to where the vehicle stands (a parameter picks the tree).
WAIT_HERE: dict[str, Any] = {**NODE_ACTION, "goal": {**NODE_ACTION["goal"], "behavior_tree": "param.tree"}}
# actionType `pick` as this project's coordinator sends it (the task's parameters as actionParameters).
PICK: dict[str, Any] = {**NODE_ACTION, "goal": {**NODE_ACTION["goal"],
                                                "behavior_tree": {"from": "param.tree", "default": "pick"}}}


class VdaRobot:
    """Robot `amr_<tag>`, VDA 5050 vehicle `acme/<serial>`: the bridge process and its navigator."""

    def __init__(self, broker: Mosquitto, tmp_path: Path, ros_context: Any, ros_env: dict[str, str],
                 schemas: Path, *, speed_mps: float = 2.0, state_period_s: float = 30.0, interface: str = "uagv",
                 actions: dict[str, Any] | None = None) -> None:
        tag = uuid.uuid4().hex[:4]
        self.robot_id, self.manufacturer, self.serial = f"amr_{tag}", "acme", f"amr-{tag}"
        self.env = ros_env
        tmp_path.mkdir(parents=True, exist_ok=True)
        bridge = bridge_config(DemoRobot(self.robot_id, "amr", ("navigate",), ()), [], host=broker.host,
                               port=broker.port, spool=tmp_path / "spool.db", registry=str(tmp_path / "registry"))
        bridge["vda5050"] = {"manufacturer": self.manufacturer, "serial_number": self.serial, "node": NODE_ACTION,
                             "actions": actions if actions is not None else {"wait_here": WAIT_HERE},
                             "schemas": str(schemas), "keepalive_s": 5, "interface_name": interface,
                             "state_period_s": state_period_s, "visualization_hz": 2,
                             "position": {"topic": "/{robot_id}/robot_state",
                                          "type": "swarm_bridge_msgs/msg/RobotState"}}
        self.bridge_path = tmp_path / "bridge.yaml"
        self.bridge_path.write_text(yaml.safe_dump(bridge))
        self.log_path = tmp_path / "bridge.log"
        self.bridge: subprocess.Popen[bytes] | None = None
        self.node = new_node(f"navigator_{self.robot_id}", ros_context)
        self.navigator = SimNavigator(self.node, self.robot_id, speed_mps=speed_mps)
        self._stop = threading.Event()
        self._spinner = threading.Thread(target=spin_until, args=(make_executor(ros_context), [self.node]),
                                         kwargs={"done": self._stop.is_set}, daemon=True)
        self._spinner.start()

    def start_bridge(self) -> None:
        with self.log_path.open("ab") as out:
            self.bridge = subprocess.Popen([sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge", "--config",
                                            str(self.bridge_path)], env=self.env, stdout=out,
                                           stderr=subprocess.STDOUT)

    def stop_bridge(self, how: signal.Signals = signal.SIGTERM) -> int:
        assert self.bridge is not None
        self.bridge.send_signal(how)
        code = self.bridge.wait(60)
        self.bridge = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.terminate()
            try:
                self.bridge.wait(30)
            except subprocess.TimeoutExpired:
                self.bridge.kill()
        self._stop.set()
        self._spinner.join(10)
        self.navigator.close()
        self.node.destroy_node()
