"""The robot bridge: wires a robot's routes to its uplink on one rclpy node; does none of their work."""

from __future__ import annotations

import logging

from rclpy.node import Node

from swarm_bridge.config import RobotBridgeConfig
from swarm_bridge.ros.ros_to_uplink import UplinkRoute
from swarm_bridge.routing import routes_for
from swarm_bridge.transport import Uplink

__all__ = ["RobotBridge"]

log = logging.getLogger(__name__)


class RobotBridge:
    """One UplinkRoute per configured route of one robot, all sharing one uplink."""

    def __init__(self, node: Node, config: RobotBridgeConfig, uplink: Uplink) -> None:
        self.config = config
        self.node = node
        self.uplink = uplink
        self.routes = [
            UplinkRoute(node, route, robot_id=config.robot_id, uplink=uplink) for route in routes_for(config)
        ]
        log.info("robot %s: %d routes up to %s", config.robot_id, len(self.routes), config.uplink.kind)

    def summary(self) -> dict[str, dict[str, int]]:
        """Per route (by its str): received, sent, dropped."""
        return {str(r.route): vars(r.counts).copy() for r in self.routes}
