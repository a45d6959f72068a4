"""What reached Kafka: a consumer reading the robots' topics and the coordinator's task events, counting
each record once per (robot, stream, seq) and timing it from the robot's send stamp; and the task feed
that submits task requests at a steady rate."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from swarm_bridge.coordinator.core.events import decode_event
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.fleetbench.ledger import Delivery, SeqLedger
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.sim.records import read_head
from swarm_bridge.transport.kafka_clients import TIMESTAMP_LOG_APPEND_TIME, Consumer, Producer, TopicPartition

__all__ = ["KafkaProbe", "TaskFeed", "TaskTally"]

log = logging.getLogger(__name__)


@dataclass
class TaskTally:
    """Tasks of one step: submitted, done, ended otherwise, and round trips in ms: submit -> the robot's done
    status read by the coordinator (the done event's `updated_ns`), and submit -> that event read here."""

    submitted: int = 0
    done: int = 0
    other_end: int = 0
    first_sent_ns: int = 0  # the step's first submission
    done_at: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # task -> (submitted, done, seen) ns

    @property
    def round_trip_ms(self) -> list[float]:
        return [(done - sent) / 1e6 for sent, done, _seen in self.done_at.values()]

    @property
    def seen_ms(self) -> list[float]:
        return [(seen - sent) / 1e6 for sent, _done, seen in self.done_at.values()]

    @property
    def sent_ns(self) -> list[int]:
        """When each task of `round_trip_ms` was submitted."""
        return [sent for sent, _done, _seen in self.done_at.values()]

    def slowest_at_s(self, share: float = 0.01) -> list[float]:
        """When the slowest `share` of the round trips were submitted, s after the step's first submission (in order):
        clustered means one stall (e.g. at the start), spread means the tail is steady."""
        round_trip_ms, sent_ns = self.round_trip_ms, self.sent_ns
        count = max(1, int(len(round_trip_ms) * share)) if round_trip_ms else 0
        worst = sorted(range(len(round_trip_ms)), key=round_trip_ms.__getitem__)[-count:] if count else []
        return sorted(round((sent_ns[i] - self.first_sent_ns) / 1e9, 2) for i in worst)


class KafkaProbe:
    """Reads `topics` (the robots' records, Confluent-framed Avro) and `events_topic` from their ends at
    construction; `begin(run)` starts counting a new step."""

    def __init__(self, bootstrap: str, topics: Sequence[str], events_topic: str, *, fetch_wait_ms: int = 100,
                 fetch_min_bytes: int = 1 << 20) -> None:
        # Latency is read from the broker's LogAppendTime, so the probe's own delay does not enter it: the
        # broker answers a fetch when `fetch_min_bytes` are there or after `fetch_wait_ms`, so a few large
        # fetches a second instead of one per round trip (on a shared 2-core machine, CPU taken from the hub)
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"fleet-probe-{time.time_ns()}",
                                  "enable.auto.commit": False, "isolation.level": "read_committed",
                                  "fetch.wait.max.ms": fetch_wait_ms, "fetch.min.bytes": fetch_min_bytes,
                                  "logger": log})
        self.events_topic = events_topic
        assignment = []
        for topic in [*topics, events_topic]:
            meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
            for partition in meta.partitions:
                _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                assignment.append(TopicPartition(topic, partition, high))
        self.consumer.assign(assignment)
        self._lock = threading.Lock()
        self.ledger = SeqLedger(0)
        self.append_us = array("q")  # robot send -> Kafka append (LogAppendTime topics), microseconds
        self.consume_us = array("q")  # robot send -> this consumer
        self.first = self.last = 0.0
        self.bad = 0
        self.submitted: dict[str, int] = {}
        self.tasks = TaskTally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-probe", daemon=True)
        self._thread.start()

    def begin(self, run: int) -> None:
        """Count records of run `run` from now on (fresh ledger, latencies, task tally)."""
        with self._lock:
            self.ledger = SeqLedger(run)
            self.append_us = array("q")
            self.consume_us = array("q")
            self.first = self.last = 0.0
            self.submitted = {}
            self.tasks = TaskTally()

    def submit(self, task_id: str, now_ns: int) -> None:
        with self._lock:
            self.submitted[task_id] = now_ns
            self.tasks.submitted += 1
            self.tasks.first_sent_ns = self.tasks.first_sent_ns or now_ns

    def delivery(self, sent: Mapping[tuple[str, str], int]) -> Delivery:
        """What arrived so far of what the robots sent (this step)."""
        with self._lock:
            return self.ledger.delivery(sent)

    def snapshot(self) -> tuple[list[float], list[float], float, TaskTally]:
        """This step's latencies (ms): to Kafka append, to this consumer; last arrival (wall time); tasks."""
        with self._lock:
            return ([v / 1000 for v in self.append_us], [v / 1000 for v in self.consume_us], self.last,
                    TaskTally(self.tasks.submitted, self.tasks.done, self.tasks.other_end, self.tasks.first_sent_ns,
                              dict(self.tasks.done_at)))

    def open_tasks(self) -> int:
        with self._lock:
            return self.tasks.submitted - self.tasks.done - self.tasks.other_end

    def _run(self) -> None:
        while not self._stop.is_set():
            msgs = self.consumer.consume(5000, 0.05)
            if not msgs:
                continue
            now_ns = time.time_ns()
            wall = time.time()
            with self._lock:
                for msg in msgs:
                    if msg.error() is not None:
                        continue
                    if msg.topic() == self.events_topic:
                        self._event(msg.value() or b"", now_ns)
                        continue
                    try:
                        head = read_head(msg.value() or b"", 5)  # after the Confluent framing, not copied
                    except Exception:
                        self.bad += 1
                        continue
                    self.ledger.add(head.robot_id, head.stream, head.seq)
                    if head.seq >> 32 != self.ledger.run:
                        continue
                    self.consume_us.append((now_ns - head.stamp_ns) // 1000)
                    kind, stamp_ms = msg.timestamp()
                    if kind == TIMESTAMP_LOG_APPEND_TIME:
                        self.append_us.append(stamp_ms * 1000 - head.stamp_ns // 1000)
                    self.first = self.first or wall
                    self.last = wall

    def _event(self, payload: bytes, now_ns: int) -> None:
        try:
            event = decode_event(payload)
        except Exception:
            self.bad += 1
            return
        sent = self.submitted.pop(event.task.task_id, None) if event.task.terminal else None
        if sent is None:
            return
        if event.task.state is TaskState.DONE:
            self.tasks.done += 1
            self.tasks.done_at[event.task.task_id] = (sent, event.task.updated_ns, now_ns)
        else:
            self.tasks.other_end += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()


class TaskFeed:
    """Submits `rate_per_s` navigate tasks (JSON, key task_id, its shard's partition) from a thread."""

    def __init__(self, bootstrap: str, topic: str, shards: int, probe: KafkaProbe, *, rate_per_s: float,
                 prefix: str, seed: int = 0, ready_topic: str | None = None) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": True,
                                  "logger": log})
        self.topic, self.shards, self.probe, self.rate, self.prefix = topic, shards, probe, rate_per_s, prefix
        self.ready_topic = ready_topic
        self.rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-feed", daemon=True)

    def start(self) -> TaskFeed:
        """Connect and learn the topic first (its start-up is no task's round trip), then submit. With `ready_topic`
        (a topic of the bench's own), one record there first: a new producer's first records also wait for its
        producer id and its connection to the partitions' leader (the first 60 ms of tasks waited ~0.5 s)."""
        self.producer.list_topics(self.topic, timeout=30)
        if self.ready_topic is not None:
            self.producer.produce(self.ready_topic, value=b"ready")
            self.producer.flush(30)
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        i = 0
        while not self._stop.is_set():
            delay = start + i / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            task_id = f"{self.prefix}-{i:06d}"
            doc = {"task_id": task_id, "kind": "navigate", "priority": 1,
                   "target": {"x": self.rng.uniform(0, 100), "y": self.rng.uniform(0, 100)}}
            self.probe.submit(task_id, time.time_ns())
            self.producer.produce(self.topic, key=task_id.encode(), value=json.dumps(doc).encode(),
                                  partition=shard_of(task_id, self.shards))
            self.producer.poll(0)
            i += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.producer.flush(10)
