"""Kafka calls that may outlive their own timeouts, run on a thread of their own and waited for with a bound.

librdkafka 2.16 can block `send_offsets_to_transaction` past its timeout, forever, once the group coordinator's node
was killed and came back (librdkafka issues 5456 and 5511: the coordinator request's timeout is never checked, and a
decommissioned broker stays cached as the coordinator). A call on the main thread would stop the coordinator, deaf
to SIGTERM; here the caller gives up after the bound and the instance ends like a fenced one, so the service starts
a new one with new clients. The thread is a daemon: one left standing in Kafka never holds the process at exit.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from swarm_bridge.transport.kafka_clients import KafkaError, KafkaException

__all__ = ["CallThread", "stuck_error"]

log = logging.getLogger(__name__)


class CallThread:
    """One daemon thread running the calls submitted to it in order, each answered through a Future."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stuck = False  # a call outlived the bound it was waited for: shutting down does not wait for it
        self._calls: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...], Future[Any]] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, call: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._calls.put((call, args, future))
        return future

    def call(self, within_s: float, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)` on this thread: its result (or its exception) within `within_s`, past it a fatal error."""
        return self.result(self.submit(call, *args), within_s)

    def result(self, future: Future[Any], within_s: float) -> Any:
        """The result of a call submitted here, waited for at most `within_s`; past it this thread is `stuck` and a
        fatal KafkaException is raised (logged with where the thread stands)."""
        try:
            return future.result(timeout=within_s)
        except FutureTimeout:
            raise self.given_up(within_s) from None

    def given_up(self, within_s: float) -> KafkaException:
        """This thread counted as stuck after `within_s` (shutting down leaves it behind): the fatal error to raise."""
        self.stuck = True
        return stuck_error(within_s, self.name)

    def shutdown(self) -> None:
        """No more calls; the ones submitted finish first, unless the thread is stuck (then it is left behind)."""
        self._calls.put(None)
        if not self.stuck:
            self._thread.join()

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            call, args, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(call(*args))
            except BaseException as exc:  # handed to whoever waits for it
                future.set_exception(exc)


def stuck_error(within_s: float, thread: str) -> KafkaException:
    """The fatal error of a thread (named `thread...`) that has not finished a call in `within_s`; its stack is
    logged, to show which Kafka call held it."""
    frames = sys._current_frames()
    stacks = ["".join(traceback.format_stack(frames[t.ident])) for t in threading.enumerate()
              if t.name.startswith(thread) and t.ident in frames]
    log.error("%s: no call finished in %g s; its stack:\n%s", thread, within_s, "\n".join(stacks) or "(gone)")
    return KafkaException(KafkaError(KafkaError._TIMED_OUT, f"the thread {thread} did not finish a Kafka call in "
                                     f"{within_s:g} s (it outlived its own timeout)", fatal=True))
