"""Spin rclpy nodes until SIGINT/SIGTERM or a condition, in short slices (EventsExecutor needs them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future

from swarm_bridge.signals import stop_on_signals

__all__ = ["IDLE_SLICE_S", "make_executor", "spin_until"]

# The slice of a spin that only a signal ends: how long a stop may wait. The executor wakes for every event
# within a slice anyway; each slice costs a return to Python (20 a second at 0.05 s: 0.2 % of a core idle).
IDLE_SLICE_S = 0.5


def make_executor(context: Any = None) -> Executor:
    """The fastest executor that works here: EventsExecutor when rclpy has it, else single-threaded."""
    try:
        from rclpy.experimental import EventsExecutor

        executor: Executor = EventsExecutor(context=context)
    except (ImportError, RuntimeError):
        executor = SingleThreadedExecutor(context=context)
    return executor


def spin_until(
    executor: Executor,
    nodes: Iterable[Node],
    *,
    done: Callable[[], bool] = lambda: False,
    timeout_s: float | None = None,
    slice_s: float = 0.05,
) -> bool:
    """Spin until `done()`, a signal, or `timeout_s`; returns whether `done()` became true."""
    nodes = list(nodes)
    for node in nodes:
        executor.add_node(node)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    never = _never_done(executor)  # spinning "until" it handles every event of a slice in one native call
    with stop_on_signals() as stop:
        while not stop.is_set():
            if done():
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            try:
                executor.spin_until_future_complete(never, timeout_sec=slice_s)
            except ExternalShutdownException:  # a signal reached rclpy's own handler before ours was set
                break
            except Exception:  # e.g. "failed to initialize wait set: the given context is not valid"
                if all(node.context.ok() for node in nodes):
                    raise
                break  # rclpy's own signal handler shut the context down before ours was set: a stop
        return done()


def _never_done(executor: Executor) -> Future:
    """A future no one completes, made by the executor that will wait on it (EventsExecutor has its own kind)."""
    create = getattr(executor, "create_future", None)
    return create() if create is not None else Future(executor=executor)
