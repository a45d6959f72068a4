"""A node process whose ROS teardown hangs (Fast DDS 3.2 can deadlock destroying a participant while others go away,
holding the GIL) still ends: after `ROS_TEARDOWN_S` it dumps its stacks and exits with 1, instead of standing deaf to
SIGTERM; a teardown that finishes leaves the exit code alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

PROCESS = """
import sys, time
import rclpy.node
from swarm_bridge.ros import context
context.ROS_TEARDOWN_S = 1.0 if sys.argv[1] == "held" else 60.0  # the quick one: a busy machine's teardown too
if sys.argv[1] == "held":
    def held_in_dds(self):  # stands for the deadlocked participant: it never returns, GIL or not
        time.sleep(3600)
    rclpy.node.Node.destroy_node = held_in_dds
with context.process_node("teardown_" + sys.argv[1]) as node:
    print("node up:", node.get_name(), flush=True)
print("done", flush=True)
"""


def test_a_teardown_that_hangs_ends_the_process_with_1_and_its_stacks(ros_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROCESS, "held"], env=ros_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "node up: teardown_held" in done.stdout and "done" not in done.stdout
    assert "Timeout (0:00:01)!" in done.stderr and "held_in_dds" in done.stderr, done.stderr[-2000:]


def test_a_teardown_that_finishes_keeps_the_exit_code(ros_env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-c", PROCESS, "quick"], env=ros_env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "node up: teardown_quick" in done.stdout and "done" in done.stdout
    assert "Timeout" not in done.stderr
