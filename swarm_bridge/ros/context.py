"""rclpy's lifecycle for the processes and demo fleets that run nodes: init a context, make nodes in it, shut
it down; the node executables' ROS arguments stripped before their own parsing."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

__all__ = ["Context", "Node", "new_node", "process_node", "ros_context", "without_ros_args"]


@contextmanager
def ros_context(domain_id: int) -> Iterator[Context]:
    """An rclpy context of its own on `domain_id`, discovery limited to this host."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


def new_node(name: str, context: Context | None = None) -> Node:
    """A node called `name` in `context` (None: the process's default context, see `process_node`)."""
    return rclpy.create_node(name, context=context)


@contextmanager
def process_node(name: str, args: Sequence[str] | None = None) -> Iterator[Node]:
    """The process's one node `name`: rclpy initialised with `args` (its ROS arguments apply: remaps, params),
    the node destroyed and rclpy shut down on the way out."""
    rclpy.init(args=None if args is None else list(args))
    try:
        node = rclpy.create_node(name)
        try:
            yield node
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()


def without_ros_args(args: Sequence[str]) -> list[str]:
    """`args` less the ROS arguments (`--ros-args ... [--]`), for a node executable's own argparse."""
    return list(remove_ros_args(list(args)))
