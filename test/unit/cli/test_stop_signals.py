"""A burst of stop signals stops a process once: a signal arriving while an earlier one's handler is inside
`Event.set()` (its lock held, in the same thread) must not wait for that lock (a gateway under `ros2 launch` hung
so)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from swarm_bridge.coordinator.wiring import stop_event
from swarm_bridge.signals import stop_on_signals


class SignalDuringSet(threading.Event):
    """An Event whose first `set()` takes a second SIGTERM while it holds its lock, as a nested handler sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.nested = ""

    def set(self) -> None:
        if not self.lock.acquire(timeout=2):
            raise AssertionError("the second signal's handler waited for the lock the first one holds")
        try:
            if not self.nested:
                self.nested = "running"
                handler = signal.getsignal(signal.SIGTERM)
                assert callable(handler)
                handler(signal.SIGTERM, None)
                self.nested = "returned"
            super().set()
        finally:
            self.lock.release()


@contextmanager
def _on_signals(stop: threading.Event) -> Iterator[threading.Event]:
    with stop_on_signals(stop) as event:
        yield event


@contextmanager
def _coordinator(stop: threading.Event) -> Iterator[threading.Event]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop_event(stop, handle_signals=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize("install", [_on_signals, _coordinator], ids=["stop_on_signals", "coordinator"])
def test_a_signal_during_the_first_ones_handler_returns_and_the_stop_is_set_once(
        install: Callable[[threading.Event], AbstractContextManager[threading.Event]]) -> None:
    stop = SignalDuringSet()
    with install(stop) as event:
        handler = signal.getsignal(signal.SIGINT)
        assert callable(handler)
        handler(signal.SIGINT, None)  # the first signal; its set() takes the second
        assert event is stop and stop.is_set() and stop.nested == "returned"
        handler(signal.SIGTERM, None)  # a third, later: nothing more to do
        assert stop.is_set()
