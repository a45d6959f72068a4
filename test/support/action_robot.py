"""A robot whose tasks run through a ROS 2 action: a real robot bridge process (tasks mapped to NavigateToPose) in
front of a simulated navigator (a real rclpy action server in this process), on a site coordinator's broker."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import yaml
from site_harness import site_doc, wait_for

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.tasks import Task
from swarm_bridge.coordinator.site.runner import SiteCoordinator
from swarm_bridge.demo.plan import DemoRobot, bridge_config
from swarm_bridge.ros.context import new_node
from swarm_bridge.ros.navigator import SimNavigator
from swarm_bridge.ros.spin import make_executor, spin_until

# navigate: to the target's x, y in its frame, heading from the parameter yaw (default 0); dock: the same action,
# its behaviour tree a parameter the task must give (no default).
NAVIGATE: dict[str, Any] = {
    "action": "/{robot_id}/navigate_to_pose", "type": "nav2_msgs/action/NavigateToPose",
    "goal": {"pose.header.frame_id": "target.frame", "pose.pose.position.x": "target.x",
             "pose.pose.position.y": "target.y", "pose.pose.orientation": {"from": "param.yaw", "default": 0.0}},
    "progress": {"remaining": "distance_remaining"}, "result_reason": ["error_code", "error_msg"],
    "server_timeout_s": 20,
}
DOCK: dict[str, Any] = {**NAVIGATE, "goal": {**NAVIGATE["goal"], "behavior_tree": "param.tree"}}
CAPABILITIES = ["navigate", "dock"]


class ActionRobot:
    """One robot (`amr_<tag>`): coordinator, bridge process and navigator; `close` stops all three."""

    def __init__(self, broker: Mosquitto, tmp_path: Path, ros_context: Any, ros_env: dict[str, str], *,
                 coordinator: dict[str, Any] | None = None, **navigator: Any) -> None:
        self.robot_id = f"amr_{uuid.uuid4().hex[:4]}"
        self.tmp_path, self.env = tmp_path, ros_env
        tmp_path.mkdir(parents=True, exist_ok=True)
        doc = site_doc(broker, capabilities={"amr": CAPABILITIES}, **(coordinator or {}))
        self.config = validate_config(doc, CoordinatorConfig)
        self.coordinator = SiteCoordinator(self.config).start()
        bridge = bridge_config(DemoRobot(self.robot_id, "amr", tuple(CAPABILITIES), ()), [], host=broker.host,
                               port=broker.port, spool=tmp_path / "spool.db", registry=str(tmp_path / "registry"))
        bridge["fleet"] = self.config.fleet
        bridge["tasks"] = {"actions": {"navigate": NAVIGATE, "dock": DOCK}, "progress_max_hz": 5}
        self.bridge_path = tmp_path / "bridge.yaml"
        self.bridge_path.write_text(yaml.safe_dump(bridge))
        self.log_path = tmp_path / "bridge.log"
        self.bridge: subprocess.Popen[bytes] | None = None
        self.node = new_node(f"navigator_{self.robot_id}", ros_context)
        self.navigator = SimNavigator(self.node, self.robot_id, capabilities=CAPABILITIES, **navigator)
        self._stop = threading.Event()
        self._spinner = threading.Thread(target=spin_until, args=(make_executor(ros_context), [self.node]),
                                         kwargs={"done": self._stop.is_set}, daemon=True)
        self._spinner.start()
        self.start_bridge()

    def start_bridge(self) -> None:
        """Start the robot bridge process (its log appended to `log_path`) and wait until the robot is online."""
        with self.log_path.open("ab") as out:
            self.bridge = subprocess.Popen([sys.executable, "-m", "swarm_bridge.nodes", "robot_bridge", "--config",
                                            str(self.bridge_path)], env=self.env, stdout=out,
                                           stderr=subprocess.STDOUT)
        robot = self.robot_id
        wait_for(lambda: ((seen := self.coordinator.dispatch.fleet.get(robot)) is not None and seen.online
                          and bool(seen.kind)) or self.bridge is None or self.bridge.poll() is not None,
                 60, f"{robot} online with its state")
        assert self.bridge.poll() is None, self.log()

    def stop_bridge(self, how: signal.Signals = signal.SIGTERM) -> int:
        """Signal the bridge and wait for it to exit; its exit status."""
        assert self.bridge is not None
        self.bridge.send_signal(how)
        code = self.bridge.wait(60)
        self.bridge = None
        return code

    def submit(self, task_id: str, kind: str = "navigate", **fields: Any) -> None:
        answer = self.coordinator.submit({"task_id": task_id, "kind": kind, **fields})
        assert answer.accepted, answer

    def task(self, task_id: str) -> Task:
        task = self.coordinator.task(task_id)
        assert task is not None, task_id
        return task

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
        self.coordinator.stop()
