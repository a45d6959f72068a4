"""Stop on SIGINT/SIGTERM: an Event a signal sets, the previous handlers back afterwards; and stop with the launch
that started the process."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["EXIT_WITH_PARENT", "exit_with_parent_if_asked", "setter_for_signals", "stop_on_signals",
           "terminate_as_interrupt"]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_WITH_PARENT = "SWARM_BRIDGE_EXIT_WITH_PARENT"  # set to 1 by the launch files
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def setter_for_signals(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    """A signal handler that sets `stop`, once. A handler runs in the main thread between any two bytecodes, also
    inside itself: a signal arriving while an earlier one's handler is inside `stop.set()` (which holds the Event's
    lock) would wait forever for that lock if it set `stop` again. Stops come as bursts (ros2 launch sends SIGINT,
    later SIGTERM; a killed launch adds SIGTERM by PR_SET_PDEATHSIG, a `timeout` its own to the whole group), and a
    gateway so hung never stopped; so later signals return at once."""
    requested = False

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal requested
        if requested:
            return
        requested = True
        stop.set()

    return _stop


@contextmanager
def stop_on_signals(stop: threading.Event | None = None) -> Iterator[threading.Event]:
    """`stop` (or a new Event), set by SIGINT/SIGTERM while inside; off the main thread no handler can be set,
    so only its owner sets it."""
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        setter = setter_for_signals(stop)
        previous = {sig: signal.signal(sig, setter) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_with_parent_if_asked() -> bool:
    """When the environment asks (the launch files do), have Linux send SIGTERM when the parent dies: `ros2 launch`
    killed by SIGTERM or SIGKILL takes nobody down, and its bridge would run on orphaned. The variable is removed so
    the process's own children do not inherit it (their parent may be a short-lived thread)."""
    if os.environ.pop(EXIT_WITH_PARENT, "") != "1":
        return False
    if not sys.platform.startswith("linux"):
        log.warning("%s=1 is honoured on Linux only; this process outlives its launch if the launch is killed",
                    EXIT_WITH_PARENT)
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        log.warning("cannot ask to stop with the launch (prctl: %s); a killed launch leaves this process running",
                    os.strerror(ctypes.get_errno()))
        return False
    if os.getppid() == 1:  # the launch died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
    return True


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while inside, as Ctrl-C does: a long job (a benchmark) that cleans up on
    Ctrl-C cleans up when killed politely too, instead of leaving its brokers and children running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
