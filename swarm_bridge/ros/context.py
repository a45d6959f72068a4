"""rclpy's lifecycle for the processes and demo fleets that run nodes: init a context, make nodes in it, shut
it down; the node executables' ROS arguments stripped before their own parsing."""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.utilities import remove_ros_args

__all__ = ["ROS_TEARDOWN_S", "Context", "Node", "new_node", "process_node", "ros_context", "without_ros_args"]

ROS_TEARDOWN_S = 20.0
"""The longest a node process's ROS teardown may take (its node destroyed, rclpy shut down, the interpreter's exit).
Fast DDS 3.2 can deadlock destroying a participant while discovery data of participants going away arrives (the
main thread spinning in DomainParticipant::set_listener with the GIL held, a receive thread waiting for its mutex):
past this the process dumps its threads' stacks to stderr and exits with 1 instead of hanging deaf to SIGTERM."""


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
    the node destroyed and rclpy shut down on the way out, within `ROS_TEARDOWN_S`."""
    rclpy.init(args=None if args is None else list(args))
    try:
        node = rclpy.create_node(name)
        try:
            yield node
        finally:
            # Everything of the process's own is done by now. A watchdog thread of the interpreter's (it needs
            # no GIL, which the deadlocked teardown holds) ends the process if the teardown hangs; exiting ends it.
            faulthandler.dump_traceback_later(ROS_TEARDOWN_S, exit=True)
            node.destroy_node()
    finally:
        rclpy.try_shutdown()


def without_ros_args(args: Sequence[str]) -> list[str]:
    """`args` less the ROS arguments (`--ros-args ... [--]`), for a node executable's own argparse."""
    return list(remove_ros_args(list(args)))
