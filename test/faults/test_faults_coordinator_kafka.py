"""The coordinator when its Kafka broker stalls: the broker's JVM is paused (SIGSTOP) and resumed (SIGCONT) at
seeded random points while transactional rounds run, each pause shorter than the configured timeouts.

A real Kafka of this module's own (pausing it must not hurt other tests), a real coordinator process, simulated
robots on Kafka. The coordinator must live through every stall (a supervisor here restarts it if it exits, as the
demo does, and counts it), and every task must end exactly once. The seed is printed; SWARM_BRIDGE_FAULT_SEED
repeats a run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from coordinator_fleet import CAPABILITIES, TaskLog, coordinator_config, coordinator_doc, wait_for, write_config

from swarm_bridge.brokers import Kafka, free_port
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.dispatch import EventRecord, Output
from swarm_bridge.coordinator.core.events import encode_event
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance, coalesce
from swarm_bridge.coordinator.kafka.snapshot import submit_tasks
from swarm_bridge.sim.kafka_fleet import KafkaFleet
from swarm_bridge.sim.task_robots import TaskRobot

pytestmark = pytest.mark.integration

STALLS = 3
# each pause: above the connect timeout (which bounded a round before), below the coordinator's session and
# transaction timeouts and the broker's own session with its controller (broker.session.timeout.ms, 9 s: a
# longer pause fences the broker and the cluster is down well beyond the pause)
STALL_S = (3.0, 6.5)
TASKS = 240


@pytest.fixture(scope="module")
def stalled_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    """A Kafka of this module's own, since its JVM gets paused."""
    broker = Kafka(run_dir=tmp_path_factory.mktemp("stalled-kafka"), port=free_port())
    broker.start()
    try:
        yield broker
    finally:
        if broker.pid is not None:
            os.kill(broker.pid, signal.SIGCONT)
        broker.stop()


class Supervised:
    """`swarm-bridge coordinator` as a supervisor runs it: restarted (same instance id) whenever it exits."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path, self.log_path = config_path, log_path
        self.exits: list[int] = []
        self._stop = threading.Event()
        self.proc = self._start()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "swarm_bridge.cli", "coordinator", "--config",
                                 str(self.config_path), "--instance-id", "stalled"], stdout=subprocess.DEVNULL,
                                stderr=self.log_path.open("ab"), env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            status = self.proc.poll()
            if status is not None:
                self.exits.append(status)
                self.proc = self._start()

    def owns_all(self, shards: int) -> bool:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"owns shards {list(range(shards))}" in text

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def test_broker_stalls_kill_no_coordinator_and_lose_no_task(stalled_kafka: Kafka, tmp_path: Path) -> None:
    seed = int(os.environ.get("SWARM_BRIDGE_FAULT_SEED") or random.randrange(1 << 20))
    rng = random.Random(seed)
    pauses = [(rng.uniform(0.1, 1.5), rng.uniform(*STALL_S)) for _ in range(STALLS)]
    print(f"broker stalls (seed {seed}): " + ", ".join(f"after {a:.1f} s for {s:.1f} s" for a, s in pauses))
    # the group session and the transactions outlast every stall: a stall shorter than them must not end the
    # instance (connect_timeout_s is for connecting at start, not a bound on a round)
    doc = coordinator_doc(stalled_kafka, tmp_path, kafka={"session_timeout_s": 20, "transaction_timeout_s": 30,
                                                          "connect_timeout_s": 2},
                          tasks={"accept_timeout_s": 60, "run_timeout_s": 120, "robot_offline_after_s": 30})
    config = validate_config(doc, CoordinatorConfig)
    path = write_config(doc, tmp_path / "coordinator.yaml")
    coordinator = Supervised(path, tmp_path / "coordinator.log")
    sim: KafkaFleet | None = None
    log: TaskLog | None = None
    pid = stalled_kafka.pid
    assert pid is not None
    try:
        wait_for(lambda: coordinator.owns_all(config.shards), 90, "the coordinator to own every shard")
        log = TaskLog(stalled_kafka, config)
        robots = [TaskRobot(f"{kind}_{i:02d}", kind, CAPABILITIES[kind], x=float(i))
                  for i, kind in enumerate(["amr", "drone", "arm"] * 4)]
        sim = KafkaFleet(config, robots, work_s=0.5).start()  # a wave keeps rounds going for seconds
        docs: list[dict[str, Any]] = [
            {"task_id": f"stall-{i:04d}", "kind": ["navigate", "inspect", "place", "pick"][i % 4],
             "target": {"x": float(i % 12)}} for i in range(TASKS)]
        waves = [docs[i::len(pauses) + 1] for i in range(len(pauses) + 1)]
        assert submit_tasks(config, waves[0]) == 0
        for wave, (after_s, stall_s) in zip(waves[1:], pauses, strict=True):
            assert submit_tasks(config, wave) == 0
            time.sleep(after_s)  # the wave is being assigned, reported and ended: transactional rounds back to back
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(stall_s)
            finally:
                os.kill(pid, signal.SIGCONT)
            time.sleep(2.0)
        wait_for(lambda: len(log.terminal()) >= TASKS, 120, f"all {TASKS} tasks to end")
        time.sleep(1.0)  # a second end of some task would show now
        ends, last = log.terminal(), log.last()
    finally:
        os.kill(pid, signal.SIGCONT)
        coordinator.stop()
        if sim is not None:
            sim.stop()
        if log is not None:
            log.close()
    text = coordinator.log_path.read_text(errors="replace")
    tail = "\n".join(text.splitlines()[-30:])
    assert coordinator.exits == [], f"the coordinator exited (status {coordinator.exits}) and was restarted:\n{tail}"
    assert set(ends) == {d["task_id"] for d in docs}, f"{TASKS - len(ends)} tasks never ended"
    twice = {task: n for task, n in ends.items() if n > 1}
    assert not twice, f"tasks ended more than once: {twice}"
    states = {last[d["task_id"]].task.state for d in docs}
    assert states <= {TaskState.DONE, TaskState.FAILED}, states
    print(f"FIGURES {{'tasks': {TASKS}, 'done': {sum(last[d['task_id']].task.state is TaskState.DONE for d in docs)}, "
          f"'stalls_s': {[round(s, 1) for _, s in pauses]}, 'rounds_waited': {text.count('Kafka did not')}, "
          f"'seed': {seed}}}")


class AbortingInstance(CoordinatorInstance):
    """A coordinator whose every `every`-th round Kafka aborts: its records are produced in a transaction that
    is then aborted (for real, on the broker), and the instance rolls back as it does for a round Kafka refused."""

    every = 4

    def __init__(self, config: CoordinatorConfig) -> None:
        super().__init__(config)
        self.rounds = self.aborted = 0

    def _commit(self, out: list[Output], consumed: bool) -> None:
        self.rounds += 1
        if self.rounds % self.every or not self.dispatch.owned:
            super()._commit(out, consumed)
            return
        self._producer.begin_transaction()
        for record in coalesce(out):
            if isinstance(record, EventRecord) and record.event is not None:
                self._produce(self.topics.events, record.shard, record.task_id.encode(), encode_event(record.event))
        self._producer.abort_transaction(30)
        self.aborted += 1
        self._rollback("Kafka refused the round (test); it was aborted")


def test_rounds_kafka_aborts_are_redone_and_no_task_is_lost(kafka: Kafka, tmp_path: Path) -> None:
    """The rollback after an aborted round forgets what the instance decided since its last commit and redoes it
    from the event log and the committed offsets: every task still ends exactly once."""
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "aborting"})
    instance = AbortingInstance(config)
    docs, ends = _run_tasks(kafka, config, instance, "redo")
    assert instance.aborted >= 3, f"only {instance.aborted} rounds aborted"
    assert set(ends) == {d["task_id"] for d in docs}, f"{len(docs) - len(ends)} tasks never ended"
    assert set(ends.values()) == {1}, {task: n for task, n in ends.items() if n > 1}


class RefusedCommitInstance(CoordinatorInstance):
    """A coordinator that has Kafka refuse the commit after every `every` clean ones: the committer thread aborts
    that round (for real, on the broker) as it does for an abortable error, so the round already built on the other
    producer is aborted after it and the instance rolls back. Counting clean commits, not all, keeps refusals coming
    however the machine's speed batches the rounds (a CI run had 18 commits, every 5th of them, and 2 refusals)."""

    every = 1

    def __init__(self, config: CoordinatorConfig) -> None:
        super().__init__(config)
        self.commits = self.refused = self.followers = self.clean = 0

    def _finish(self, round_: Any) -> Any:
        self.commits += 1
        if self._poisoned or not self.dispatch.owned:
            self.clean = 0
        elif self.clean >= self.every:
            self.clean = 0
            self._poisoned = True
            round_.producer.abort_transaction(30)
            round_.failed = "Kafka refused the commit (test); it was aborted"
            self.refused += 1
            return round_
        else:
            self.clean += 1
        finished = super()._finish(round_)
        self.followers += finished.failed == "a round before it failed"
        return finished


def test_a_refused_commit_aborts_the_rounds_after_it_and_no_task_is_lost(kafka: Kafka, tmp_path: Path) -> None:
    """Rounds overlap (one built while the one before it commits): when a commit is refused, the round after it
    is aborted too and the rollback redoes both from the event log and the committed offsets; every task still
    ends exactly once."""
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "refused"})
    instance = RefusedCommitInstance(config)
    docs, ends = _run_tasks(kafka, config, instance, "refused")
    print(f"FIGURES {{'commits': {instance.commits}, 'refused': {instance.refused}, "
          f"'aborted after a refused one': {instance.followers}}}")
    assert instance.refused >= 3, f"only {instance.refused} commits refused"
    assert set(ends) == {d["task_id"] for d in docs}, f"{len(docs) - len(ends)} tasks never ended"
    assert set(ends.values()) == {1}, {task: n for task, n in ends.items() if n > 1}


def _run_tasks(kafka: Kafka, config: CoordinatorConfig, instance: CoordinatorInstance,
               prefix: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """120 tasks for 8 simulated robots, `instance` stepped until each ended (at most 120 s); the tasks and how
    many times each ended."""
    log = TaskLog(kafka, config)
    sim = KafkaFleet(config, [TaskRobot(f"amr_{i:02d}", "amr", CAPABILITIES["amr"], x=float(i)) for i in range(8)],
                     work_s=0.05).start()
    docs = [{"task_id": f"{prefix}-{i:03d}", "kind": "navigate", "target": {"x": float(i % 8)}} for i in range(120)]
    try:
        assert submit_tasks(config, docs) == 0
        ends = _step_until_ended(instance, log, len(docs))
    finally:
        sim.stop()
        instance.close()
        log.close()
    return docs, ends


def _step_until_ended(instance: CoordinatorInstance, log: TaskLog, tasks: int) -> dict[str, int]:
    """Step `instance` until `tasks` tasks ended (at most 120 s); how many times each ended, a second later."""
    deadline = time.monotonic() + 120
    while len(log.terminal()) < tasks and time.monotonic() < deadline:
        instance.step()
    time.sleep(1.0)  # a second end of some task would show now
    return log.terminal()


def test_an_instance_fenced_by_its_twin_closes_without_raising(kafka: Kafka, tmp_path: Path) -> None:
    """A second instance with the same id fences the first's producers (as a restarted process does); the fenced
    one's commit fails fatally, and closing it afterwards logs and returns (a CI run died in `close()`'s flush)."""
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "twin"})
    first = CoordinatorInstance(config)
    second = None
    try:
        producer = first._producers[0]
        producer.begin_transaction()
        producer.produce(first.topics.events, b"x", key=b"fenced", partition=0)
        assert producer.flush(30) == 0
        second = CoordinatorInstance(config)  # the same transactional ids: the first's producers are fenced
        with pytest.raises(KafkaException) as raised:
            producer.commit_transaction(30)
        assert raised.value.args[0].fatal(), raised.value
    finally:
        first.close()
        if second is not None:
            second.close()


class HeldOffsetsInstance(CoordinatorInstance):
    """A coordinator whose first round's offsets Kafka never takes: the call stands until the test releases it, as
    librdkafka's send_offsets_to_transaction did in CI after the group coordinator's node came back."""

    def __init__(self, config: CoordinatorConfig, release: threading.Event) -> None:
        super().__init__(config)
        self.release = release
        self.held = 0

    def _patiently(self, what: str, call: Any, within_s: float | None = None) -> None:
        if what == "take the round's offsets" and not self.held:
            self.held += 1
            self.release.wait()  # never returns while the instance waits for it
        super()._patiently(what, call, within_s)


def test_offsets_held_by_kafka_end_the_instance_and_a_new_one_assigns_every_task_once(
        kafka: Kafka, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A Kafka call past its own timeout ends the instance with a fatal error after the bound (transaction timeout +
    connect timeout) instead of stopping it; closing it does not wait for the held thread; the instance the
    service starts next (same id: it fences the held one's open transaction) ends every task exactly once."""
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "held", "transaction_timeout_s": 2,
                                                        "connect_timeout_s": 1})
    release = threading.Event()
    held = HeldOffsetsInstance(config, release)
    log = TaskLog(kafka, config)
    sim = KafkaFleet(config, [TaskRobot(f"amr_{i:02d}", "amr", CAPABILITIES["amr"], x=float(i)) for i in range(8)],
                     work_s=0.05).start()
    docs = [{"task_id": f"held-{i:03d}", "kind": "navigate", "target": {"x": float(i % 8)}} for i in range(60)]
    after: CoordinatorInstance | None = None
    try:
        assert submit_tasks(config, docs) == 0
        deadline = time.monotonic() + 120
        with caplog.at_level("ERROR"), pytest.raises(KafkaException) as ended:
            while time.monotonic() < deadline:
                held.step()
        error = ended.value.args[0]
        assert error.fatal() and "offsets-held did not finish a Kafka call in 3 s" in error.str(), error
        assert "_patiently" in caplog.text  # the held thread's stack is logged
        assert held.held == 1
        closing = threading.Thread(target=held.close, daemon=True)
        closing.start()
        closing.join(timeout=60)
        assert not closing.is_alive(), "closing the instance waited for the held offsets thread"

        after = CoordinatorInstance(config)
        ends = _step_until_ended(after, log, len(docs))
    finally:
        release.set()
        sim.stop()
        if after is not None:
            after.close()
        log.close()
    assert set(ends) == {d["task_id"] for d in docs}, f"{len(docs) - len(ends)} tasks never ended"
    assert set(ends.values()) == {1}, {task: n for task, n in ends.items() if n > 1}
