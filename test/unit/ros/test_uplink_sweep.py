"""The sweep timer leaves a route's messages to its reader thread while that thread reads: taken by the sweep they went
one by one on the slow path, up to 10,000 at a time, with the reader thread waiting for the route's lock (a quarter of
the bridge's samples in a profile at 20,000 Odometry/s). The sweep still counts lost samples, and still takes the
messages when the reader thread is gone or stuck, and at a stop (`wait=True`)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from swarm_bridge.ros.ros_to_uplink import RouteCounts, UplinkRoute


class _Handle:
    """A subscription handle holding `count` raw messages."""

    def __init__(self, count: int) -> None:
        self.waiting = [b"raw-%d" % n for n in range(count)]

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def take_message(self, _msg_type: Any, _raw: bool) -> tuple[bytes, dict[str, int]] | None:
        return (self.waiting.pop(0), {}) if self.waiting else None


class _Reader:
    def __init__(self, reading: bool) -> None:
        self.reading = reading


class _Route:
    """The parts of an UplinkRoute its sweep uses; what it hands on and the lost-sample looks are recorded."""

    route = "route /odom"

    def __init__(self, reader: _Reader | None, waiting: int) -> None:
        self._reader = reader
        self._sub_handle = _Handle(waiting)
        self._msg_type = object()
        self._taking = threading.Lock()
        self.counts = RouteCounts()
        self.handled: list[bytes] = []
        self.lost_looks = 0

    def _handle(self, raw: bytes) -> None:
        self.handled.append(raw)

    def _take_lost(self) -> None:
        self.lost_looks += 1


def _sweep(route: _Route, **kwargs: Any) -> int:
    return UplinkRoute.sweep(route, **kwargs)  # type: ignore[arg-type]


def test_the_sweep_timer_leaves_the_messages_to_a_reading_reader_thread_and_counts_lost_samples() -> None:
    route = _Route(_Reader(reading=True), waiting=5)
    assert _sweep(route, wait=False) == 0
    assert route.handled == [] and len(route._sub_handle.waiting) == 5
    assert route.counts.swept == 0 and route.lost_looks == 1


@pytest.mark.parametrize("reader", [None, _Reader(reading=False)], ids=["no reader thread", "reader stopped or stuck"])
def test_the_sweep_timer_takes_the_messages_when_no_reader_thread_reads(reader: _Reader | None) -> None:
    route = _Route(reader, waiting=5)
    assert _sweep(route, wait=False) == 5
    assert route.handled == [b"raw-%d" % n for n in range(5)] and route.counts.swept == 5 and route.lost_looks == 1


def test_a_stop_sweeps_what_is_left_even_while_the_reader_thread_reads() -> None:
    route = _Route(_Reader(reading=True), waiting=3)
    assert _sweep(route) == 3
    assert route.handled == [b"raw-0", b"raw-1", b"raw-2"]
