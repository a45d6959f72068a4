"""The uplink reader thread says whether it reads (the robot bridge's sweep timer leaves the routes' messages to it
then): not before it starts, while it runs, not after it is closed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from swarm_bridge.ros.uplink_reader import UplinkReader

pytestmark = pytest.mark.integration


def test_the_reader_reads_from_its_start_to_its_close(ros_context: Any) -> None:
    reader = UplinkReader(ros_context)
    assert not reader.reading  # not started: a sweep takes the messages
    reader.start()
    deadline = time.monotonic() + 30.0
    while not reader.reading and time.monotonic() < deadline:
        time.sleep(0.01)
    assert reader.reading
    reader.close()
    assert not reader.reading
