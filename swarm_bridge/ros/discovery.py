"""Routes found in the ROS graph: topics a `match` selects, or the type of a topic given without one.

Polls the graph (rclpy has no discovery callback in Python) and hands each new concrete route to the
bridge once; a topic already routed, of an unexpected type, or of several types is logged, not routed, and so is
(once) a topic in the robot's namespace that no route takes, so a user whose topics go nowhere sees why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rclpy.node import Node

from swarm_bridge.config import RobotBridgeConfig
from swarm_bridge.routing import Route
from swarm_bridge.routing.naming import robot_namespace
from swarm_bridge.routing.route import discovered_routes, route_for, selector_for

__all__ = ["RouteDiscovery"]

log = logging.getLogger(__name__)


def _ros_type(graph_type: str) -> str:
    """rclpy's graph says `nav_msgs/msg/Odometry` already; older ones said `nav_msgs/Odometry`."""
    package, _, name = graph_type.rpartition("/")
    return graph_type if "/msg/" in graph_type else f"{package}/msg/{name}"


class RouteDiscovery:
    """Every `period_s`, matches the graph's topics against the routes that need it."""

    def __init__(self, node: Node, config: RobotBridgeConfig, *, taken: set[str], streams: set[str],
                 on_route: Callable[[Route], None], period_s: float = 1.0) -> None:
        self._node = node
        self._config = config
        self._pending = [(rc, selector_for(rc, config.robot_id)) for rc in discovered_routes(config)]
        self._taken = taken  # ROS topics already routed (both directions: never bridge our own output back)
        self._streams = streams
        self._on_route = on_route
        self._refused: set[str] = set()
        self._namespace = f"/{robot_namespace(config.robot_id)}/"
        self._unrouted: set[str] = set()  # topics of the robot's namespace no route takes, named once each
        self.timer = node.create_timer(period_s, self.poll) if self._pending else None

    def poll(self) -> None:
        """Look at the graph once; create the routes that became possible."""
        for topic, types in self._node.get_topic_names_and_types():
            if topic in self._taken or topic in self._refused:
                continue
            for rc, selector in self._pending:
                if not selector.matches(topic):
                    continue
                if len(types) != 1:
                    self._refuse(topic, f"has {len(types)} types {types}; give the route a type")
                    break
                ros_type = _ros_type(types[0])
                if rc.type is not None and ros_type != rc.type:
                    self._refuse(topic, f"is {ros_type}, the route expects {rc.type}")
                    break
                route = route_for(self._config, rc, topic, ros_type)
                if route.stream in self._streams:
                    self._refuse(topic, f"would be stream '{route.stream}', already taken by another route")
                    break
                self._taken.add(topic)
                self._streams.add(route.stream)
                log.info("%s: discovered (%s)", route, ros_type)
                self._on_route(route)
                break
            else:
                self._note_unrouted(topic, types)

    def _note_unrouted(self, topic: str, types: list[str]) -> None:
        if topic.startswith(self._namespace) and topic not in self._unrouted:
            self._unrouted.add(topic)
            log.info("discovery: topic %s (%s) is in the robot's namespace but no route takes it; not bridged (add "
                     "it to a route's match.allow, or a route of its own, to bridge it)", topic, ", ".join(types))

    def _refuse(self, topic: str, problem: str) -> None:
        self._refused.add(topic)
        log.warning("discovery: topic %s %s; not bridged", topic, problem)
