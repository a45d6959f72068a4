"""Kafka calls on a thread of their own, waited for with a bound: a call held by Kafka past every timeout (librdkafka's
send_offsets_to_transaction after a group coordinator's node came back; a commit) ends the instance with a fatal error
naming where it stands, instead of stopping the coordinator, and never holds the process at exit."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

import pytest

from swarm_bridge.coordinator.kafka.calls import CallThread
from swarm_bridge.transport.kafka_clients import KafkaException


def held_in_kafka(release: threading.Event) -> str:
    """Stands for a Kafka call that does not return."""
    release.wait()
    return "late"


def test_a_call_that_never_finishes_is_a_fatal_error_naming_where_it_stands(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    calls = CallThread("offsets-test")
    try:
        with caplog.at_level(logging.ERROR), pytest.raises(KafkaException) as caught:
            calls.call(0.2, held_in_kafka, release)
        error = caught.value.args[0]
        assert error.fatal() and "offsets-test did not finish a Kafka call in 0.2 s" in error.str()
        assert "held_in_kafka" in caplog.text  # the stuck thread's stack, for the next one who reads the log
        assert calls.stuck
    finally:
        release.set()
        calls.shutdown()


def test_a_round_submitted_earlier_and_never_finished_is_waited_for_with_the_same_bound() -> None:
    release = threading.Event()
    committer = CallThread("commit-test")
    future = committer.submit(held_in_kafka, release)
    with pytest.raises(KafkaException, match="commit-test did not finish"):
        committer.result(future, 0.1)
    committer.shutdown()  # returns although the call still stands: the stuck thread is left behind
    assert not future.done()
    release.set()
    assert future.result(timeout=5) == "late"


def test_calls_run_in_order_on_one_thread_and_hand_back_results_and_errors() -> None:
    calls = CallThread("calls-test")
    seen: list[tuple[int, str]] = []

    def note(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i

    futures = [calls.submit(note, i) for i in range(5)]
    assert [calls.result(f, 5) for f in futures] == list(range(5))
    assert seen == [(i, "calls-test") for i in range(5)]

    def refused() -> None:
        raise KafkaException("refused")

    with pytest.raises(KafkaException, match="refused"):
        calls.call(5, refused)
    assert not calls.stuck
    calls.shutdown()
    assert not calls._thread.is_alive()


def test_a_thread_stuck_in_kafka_does_not_hold_the_process_at_exit() -> None:
    program = ("import threading\n"
               "from swarm_bridge.coordinator.kafka.calls import CallThread\n"
               "calls = CallThread('offsets-exit')\n"
               "try:\n"
               "    calls.call(0.1, threading.Event().wait)\n"
               "except Exception as exc:\n"
               "    print('gave up:', exc.args[0].fatal())\n"
               "calls.shutdown()\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "gave up: True" in done.stdout
