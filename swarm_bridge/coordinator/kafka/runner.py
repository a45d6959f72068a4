"""One coordinator instance on Kafka: consume-transform-produce in transactions, shards from the group.

- Group consumer (all instances, `range` assignor) on the submit and status topics: partition p of both
  is shard p, so the instance given p owns the tasks whose home is shard p and the robots on it.
- View reader (`view.ViewReader`: no group, read_committed) on robot state, presence and the task events,
  from the start: every instance folds the whole fleet and every task; it only acts on its own shards.
- Two transactional producers, used in turn: the task events and commands a batch caused, and the batch's
  consumer offsets, commit together (send_offsets_to_transaction) or not at all. A round is built (records
  produced, offsets sent) on one producer while the round before it commits on the other, in a committer
  thread; its records go out once the last round's are in their partitions (order per robot and task kept),
  commits stay in round order, and a round whose predecessor failed is aborted with it (`_Round`). A round reads
  for a window, or while the round before it commits (`kafka.round_pacing`, `_READS`).
- On assignment the new shards stay paused until the view has read the event topic up to where it
  ended at assignment time (a dead instance's open transaction aborts first): that is the rebuild.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.config.robot import default_registry
from swarm_bridge.coordinator.core.dispatch import ASSIGN, Command, Dispatch, EventRecord, Forward, Output
from swarm_bridge.coordinator.core.drops import DropLog
from swarm_bridge.coordinator.core.events import SUBMITTED, encode_event
from swarm_bridge.coordinator.core.pause import MalformedPause, PauseRefusal, PauseRequest, parse_pause, pause_refusal
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.calls import CallThread
from swarm_bridge.coordinator.kafka.records import FleetRecords
from swarm_bridge.coordinator.kafka.topics import ensure_topics, require_kafka
from swarm_bridge.coordinator.kafka.vda import KafkaRecord, KafkaVda
from swarm_bridge.coordinator.kafka.view import ViewReader
from swarm_bridge.coordinator.metrics import HOPS, CoordinatorMetrics
from swarm_bridge.coordinator.wiring import build_dispatch, command_signer
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.transport.kafka_clients import (
    ANY_PARTITION,
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    KafkaMessage,
    TopicPartition,
    kafka_consumer,
    kafka_error,
    kafka_producer,
    produce_patiently,
    worth_retrying,
)
from swarm_bridge.vda5050 import MessageInvalid

__all__ = ["PRODUCERS", "CoordinatorInstance", "coalesce"]

log = logging.getLogger(__name__)
_CHECK_EVERY_NS = 500_000_000
_BATCH = 1000  # records consumed in one round at most
# How long a round reads before it decides: `kafka.round_window_ms`. With two producers, 10 ms against 20 ms halved
# the latency's p50 on a quiet machine (bench/coordinator.py); no window (a round per record) made it worse on a
# busy one; and each round is a transaction, Kafka's largest cost in the hub at 200 tasks/s (docs/fleet-scale.md).
PRODUCERS = 2
"""Transactional producers per instance, used in turn: while one round commits, the next is built on another
(its records and offsets already on their way); one producer made every round wait for the last one's commit."""


def coalesce(out: list[Output]) -> list[Output]:
    """One batch's records, with only the last event of each task (a task submitted, assigned and accepted
    in one transaction is written once, as accepted); commands and passed-on cancels all kept, in order.
    Tombstones stay, except for the partition where the task's last event goes and for a task submitted in this
    batch (nothing of it was written before: a tombstone would only add a partition to the transaction)."""
    last: dict[str, EventRecord] = {}
    born: set[str] = set()
    for record in out:
        if isinstance(record, EventRecord) and record.event is not None:
            last[record.task_id] = record
            if record.event.event == SUBMITTED:
                born.add(record.task_id)
    kept: list[Output] = []
    for record in out:
        if not isinstance(record, EventRecord):
            kept.append(record)
        elif record.event is None:
            final = last.get(record.task_id)
            if record.task_id not in born and (final is None or final.shard != record.shard):
                kept.append(record)
        elif last[record.task_id] is record:
            kept.append(record)
    return kept


def _refusal(exc: KafkaException) -> str:
    """Why a round is aborted, for an error that a transaction survives by aborting (abortable or retriable);
    raises `exc` again for any other (fatal: the instance is fenced)."""
    error = kafka_error(exc)
    if error is None or error.fatal() or not (error.txn_requires_abort() or error.retriable()):
        raise exc
    return f"Kafka refused the round or did not take it in time ({error.str()}); it was aborted"


@dataclass
class _Round:
    """One round handed to the committer: its producer, its outputs, and when it was read, began and committed."""

    producer: Any
    out: list[Output]
    consumed: bool
    read_ns: int
    inputs: int
    begun_ns: int
    done_ns: int = 0
    failed: str | None = None  # why Kafka refused it (it was aborted)
    fatal: KafkaException | None = None
    # set once its records are in their partitions (or it ended): the next round's records must come after them,
    # or a robot could get its commands out of order, and compaction keep an older event of a task
    delivered: threading.Event = field(default_factory=threading.Event)


class CoordinatorInstance:
    """Runs the dispatch against Kafka; `step()` does one consume-transform-produce round."""

    def __init__(self, config: CoordinatorConfig, *, metrics: CoordinatorMetrics | None = None,
                 dispatch: Dispatch | None = None, keep_latencies: bool = False) -> None:
        """`keep_latencies`: also keep every first assignment's latency (ns, request produced -> command
        committed) in `latencies_ns`, and each hop of it in `hops_ns` (benchmarks)."""
        self.config = config
        self.latencies_ns: list[int] | None = [] if keep_latencies else None
        self.hops_ns: dict[str, list[int]] | None = {hop: [] for hop in HOPS} if keep_latencies else None
        self.dispatch = dispatch or build_dispatch(config)
        self.metrics = metrics or CoordinatorMetrics()
        self.instance_id = config.kafka.instance_id or f"{socket.gethostname()}-{os.getpid()}"
        self.drops = DropLog(f"instance {self.instance_id}", self.dispatch.counts, self.metrics.dropped, log)
        self.topics = config.topics
        self.records = FleetRecords(fmt=config.robot_format, registry=config.registry or default_registry(),
                                    subject_name_strategy=config.subject_name_strategy,
                                    state_topic=self.topics.state, status_topic=self.topics.status,
                                    commands_topic=self.topics.commands, signer=command_signer(config))
        require_kafka(config)
        ensure_topics(config)
        common = config.kafka.client_settings()
        transactional_id = f"{config.kafka.group}.{self.instance_id}"
        self._producers = [self._transactional(common, transactional_id + (f".{i}" if i else ""))
                           for i in range(PRODUCERS)]
        self._producer = self._producers[0]  # the producer of the next round (free: its last round finished)
        self._inflight: deque[tuple[_Round, Future[_Round]]] = deque()  # handed to the committer, oldest first
        self._committer = CallThread(f"commit-{self.instance_id}")
        # The round's consumer offsets are sent from a thread of their own: librdkafka can block that call forever
        # after the group coordinator's node came back (`calls`); the main thread waits for it with a bound.
        self._offsets = CallThread(f"offsets-{self.instance_id}")
        self._poisoned = False  # a round failed: the committer aborts the rounds after it until the rollback
        # The longest a round may take in the committer (flush, commit and abort, each bounded by its own timeout)
        # and the offsets may take to be sent (retried for a transaction timeout), before this instance counts
        # Kafka as stuck and ends like a fenced one (the service starts a new one with new clients).
        kafka = config.kafka
        self._stuck_s = 6 * kafka.transaction_timeout_s + 2 * kafka.connect_timeout_s
        self._offsets_s = kafka.transaction_timeout_s + kafka.connect_timeout_s  # its retries end by the first
        # VDA 5050 vehicles through the gateway: their topics read by the view, orders produced in the rounds
        self.vda = KafkaVda(config, lambda: self.dispatch.book, registry=self.records.registry) \
            if config.vda5050 is not None else None
        self.view = ViewReader(config, self.dispatch, self.records, self._malformed, self.vda)
        session_ms = int(config.kafka.session_timeout_s * 1000)
        self._group = kafka_consumer({**common, "group.id": config.kafka.group, "client.id": self.instance_id,
                                      "enable.auto.commit": False, "isolation.level": "read_committed",
                                      "auto.offset.reset": "earliest", "partition.assignment.strategy": "range",
                                      "session.timeout.ms": session_ms,
                                      "heartbeat.interval.ms": max(200, session_ms // 6)}, log)
        self._group.subscribe([self.topics.submit, self.topics.status], on_assign=self._on_assign,
                              on_revoke=self._on_revoke)
        self._pending: dict[int, int] | None = None  # event partition -> offset to reach before owning
        self._rebuilding = False
        self._pending_shards: frozenset[int] = frozenset()
        self._paused: list[TopicPartition] = []
        self._last_check = 0
        self._requested: dict[str, int] = {}  # queued task id -> when its request was produced (ns)
        self._round_read = (0, 0)  # this round's records: when read (ns), how many
        self._extra: list[KafkaRecord] = []  # this round's records for VDA 5050 vehicles beside its commands
        self.misplaced = 0  # task status records found off their robot's shard partition
        self._keep_ended_ns = int(config.tasks.keep_ended_s * 1e9)
        self.assigned = 0

    def _transactional(self, common: dict[str, Any], transactional_id: str) -> Any:
        """One transactional producer, initialised (fencing an earlier process with the same id)."""
        kafka = self.config.kafka
        producer = kafka_producer({**common, "transactional.id": transactional_id,
                                   "transaction.timeout.ms": int(kafka.transaction_timeout_s * 1000),
                                   "linger.ms": 5, "compression.type": "lz4",
                                   # A transaction begun while the last one's markers are still being written
                                   # is refused (CONCURRENT_TRANSACTIONS) and retried after this backoff;
                                   # librdkafka's 100 ms default (growing to 1 s) made each round ~0.5 s.
                                   "retry.backoff.ms": 10, "retry.backoff.max.ms": 100,
                                   # A commit waits for every record's delivery; a report per record would
                                   # take the GIL once each from the committer thread (a failed record
                                   # fails the commit all the same).
                                   "delivery.report.only.error": True}, log)
        self._patiently("initialise the transactional producer", producer.init_transactions)
        return producer

    # -- group membership -------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: Sequence[TopicPartition]) -> None:
        consumer.assign(list(partitions))
        consumer.pause(list(partitions))
        self._paused = list(partitions)
        self._pending_shards = frozenset(p.partition for p in partitions if p.topic == self.topics.status)
        self._pending = None
        self._rebuilding = True
        log.info("instance %s: assigned shards %s; rebuilding from %s", self.instance_id,
                 sorted(self._pending_shards), self.topics.events)

    def _on_revoke(self, consumer: Consumer, partitions: Sequence[TopicPartition]) -> None:
        why = self._drain()  # the rounds in flight end before the shards move
        if why is not None:  # forget what was decided since the last commit: the next owner redoes it
            log.warning("instance %s: %s; forgetting the rounds since the last commit", self.instance_id, why)
            self._forget()
        self.dispatch.owned = frozenset()
        self._pending = None
        self._rebuilding = False
        self._paused = []
        self.metrics.shards_owned.set(0)
        log.info("instance %s: shards revoked", self.instance_id)

    def _check_ready(self) -> None:
        if not self._rebuilding:
            return
        if self._pending is None:
            try:  # where the event topic ends now: read up to here before owning anything
                self._pending = self.view.event_ends()
            except KafkaException as exc:
                log.warning("instance %s: event topic ends unknown yet (%s); retrying", self.instance_id, exc)
                return
        if not self.view.caught_up(self._pending):
            return
        self._rebuilding = False
        self.dispatch.owned = self._pending_shards
        self._group.resume(self._paused)
        self._pending, self._paused = None, []
        self.metrics.shards_owned.set(len(self._pending_shards))
        log.info("instance %s: owns shards %s (%d tasks known)", self.instance_id, sorted(self.dispatch.owned),
                 len(self.dispatch.book))

    # -- one round ------------------------------------------------------------------------------------------

    def step(self, timeout_s: float | None = None) -> int:
        """Consume a batch, decide, and commit events, commands and offsets in one transaction (committed by the
        committer thread, after the rounds before it); returns how many records were produced."""
        # The next round's producer free first (its last round committed, or failed): what arrives meanwhile
        # joins this round. Rounds finished on the other producer are accounted for on the way.
        why = self._settle(free=self._producer)
        if why is not None:
            self._rollback(why)
            return 0
        # Pacing `window` reads for `timeout_s` (consume returns early only for a full batch): a round per record
        # costs more transactions than it saves waiting (`kafka.round_window_ms`, the default of `timeout_s`).
        # Pacing `commit` reads while the round before commits: lower latency where Kafka has CPU to spare.
        window_s = self.config.kafka.round_window_ms / 1000 if timeout_s is None else timeout_s
        msgs = _READS[self.config.kafka.round_pacing](self, window_s)
        read_ns = time.time_ns()
        self.view.drain()
        self._check_ready()
        now = time.time_ns()
        out: list[Output] = []
        consumed = 0
        self._extra = []
        for msg in msgs:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("instance %s: %s", self.instance_id, error)
                continue
            consumed += 1
            try:
                out += self._input(msg, now, read_ns)
            except KafkaException as exc:  # the event topic's end unknown (a stalled broker): redo the batch
                self._rollback(f"the end of {self.topics.events} is unknown ({exc.args[0]})")
                return 0
        if self.dispatch.owned:
            out += self._vehicle_reports(now)
            check = now - self._last_check >= _CHECK_EVERY_NS
            if check:
                self._last_check = now
                self.dispatch.book.forget_ended(now - self._keep_ended_ns)  # owned: the view has caught up
                self._gauges(now)
                if self.vda is not None:
                    self._extra += self.vda.quiet(self.dispatch.fleet, now, self.dispatch.stale_after_ns, self._mine)
            out += self.dispatch.tick(now, check=check)
        if not out and not consumed and not self._extra:
            return 0
        self._round_read = (read_ns, consumed)
        self._commit(out, consumed > 0)
        return len(out)

    def _read_window(self, window_s: float) -> list[KafkaMessage]:
        """A round's records, pacing `window`: what arrives within the window (sooner only for a full batch)."""
        return self._group.consume(num_messages=_BATCH, timeout=window_s)

    def _read_paced(self, window_s: float) -> list[KafkaMessage]:
        """A round's records, pacing `commit`: what arrived while the round before it committed; with nothing
        waiting, the first record to come (within the window, so the view and the checks still run) and any
        already fetched beside it."""
        if self._inflight:
            futures_wait([self._inflight[-1][1]], timeout=self._stuck_s)  # a stuck commit is `_settle`'s to report
            msgs = self._group.consume(num_messages=_BATCH, timeout=0)
            if msgs:
                return msgs
        first = self._group.poll(window_s)
        return [] if first is None else [first, *self._group.consume(num_messages=_BATCH - 1, timeout=0)]

    def _hop(self, hop: str, value_ns: int, times: int = 1) -> None:
        """One hop of a task round trip (`HOPS`), `times` times: to the metrics, and kept when benchmarking."""
        seconds = value_ns / 1e9
        observe = self.metrics.hops.labels(hop).observe
        for _ in range(times):
            observe(seconds)
        if self.hops_ns is not None:
            self.hops_ns[hop].extend([value_ns] * times)

    def _input(self, msg: KafkaMessage, now_ns: int, read_ns: int) -> list[Output]:
        topic, value, key = msg.topic(), msg.value() or b"", (msg.key() or b"").decode("utf-8", "replace")
        if topic == self.topics.submit:
            where = f"{topic}[{msg.partition()}]@{msg.offset()}"
            try:
                pause = parse_pause(value)
            except MalformedPause as exc:
                self.drops("malformed pause", f"{where}: {exc}")
                return []
            if pause is not None:
                self._pause(pause, now_ns, where)
                return []
            name = key or f"{topic}:{msg.partition()}:{msg.offset()}"
            out = self.dispatch.request(value, name, now_ns)
            if out is None and self.view.catch_up():
                out = self.dispatch.request(value, name, now_ns)
            if out is None:  # only a cancel can name an unknown task
                self.drops("cancel for an unknown task", f"{topic}[{msg.partition()}]@{msg.offset()}: task {key}")
                return []
            kind, stamp_ms = msg.timestamp()
            produced = stamp_ms * 1_000_000 if kind == TIMESTAMP_CREATE_TIME else read_ns
            self._hop("submit consumed", read_ns - produced)
            for record in out:  # latency counts from when the request was produced (its record's CreateTime)
                if isinstance(record, EventRecord) and record.event is not None and record.event.event == SUBMITTED:
                    self._requested[record.task_id] = produced
            return out
        try:
            report, sent_ns = self.records.status_stamped(value)
        except Exception as exc:
            self._malformed(msg, exc)
            return []
        if sent_ns > 0:
            self._hop("status consumed", read_ns - sent_ns)
        if msg.partition() != shard_of(report.robot_id, self.config.shards):
            # Handled all the same (dropping it would stall the task), but shard ownership no longer protects
            # the task from a second writer: counted and logged so the producer's partitioner gets fixed.
            self.misplaced += 1
            self.metrics.dropped.labels("status off its robot's shard (handled)").inc()
            if self.misplaced <= 10:
                log.warning("instance %s: %s[%s]: status of %s belongs on partition %d (its shard); the producer "
                            "must use partitioner murmur2_random or partition = shard", self.instance_id, topic,
                            msg.partition(), report.robot_id, shard_of(report.robot_id, self.config.shards))
        args: dict[str, Any] = {"robot_id": report.robot_id, "task_id": report.task_id, "state": report.state,
                                "reason": report.reason, "progress": report.progress, "now_ns": now_ns}
        result = self.dispatch.status(**args)
        if result is None and self.view.catch_up():
            result = self.dispatch.status(**args)
        if result is None:
            self.drops("status for an unknown task", f"{report.robot_id}: task {report.task_id}")
            return []
        return result

    def _pause(self, request: PauseRequest, now_ns: int, where: str) -> None:
        """An operator's pause or resume (on the robot's shard partition, so here): startPause/stopPause for the
        gateway's down rule, in this round; a robot that is no VDA 5050 vehicle seen here is refused, counted."""
        vda, robot_id = self.vda, request.robot_id
        manufacturers = None if self.config.vda5050 is None else self.config.vda5050.manufacturers

        def refusal() -> PauseRefusal | None:
            known = vda.vehicles.states if vda is not None else ()
            return pause_refusal(robot_id, manufacturers, known, self.dispatch.fleet)

        why = refusal()
        if why is not None and why.kind == "unknown vehicle" and self.view.catch_up():
            why = refusal()  # its first state may have come since the view's last read
        if why is not None or vda is None:
            self.drops(f"pause refused: {why.kind if why else 'no vda5050 section'}", f"{where}: {why}")
            return
        try:
            self._extra.append(vda.pause(robot_id, request.paused, now_ns))
        except MessageInvalid as exc:  # a bug: what we built breaks the official schema; never sent
            self.drops("vda5050 message breaks its schema", f"{where}: {robot_id}: {exc}")
            return
        log.info("instance %s: %s to %s%s", self.instance_id, request.action, robot_id,
                 f" ({request.reason})" if request.reason else "")

    def _mine(self, robot_id: str) -> bool:
        """Whether this instance owns the robot's shard."""
        return shard_of(robot_id, self.config.shards) in self.dispatch.owned

    def _vehicle_reports(self, now_ns: int) -> list[Output]:
        """The task status VDA 5050 vehicles' states said since the last round, for the tasks owned here (another
        instance's view reads the same states for its own)."""
        if self.vda is None or not self.vda.reports:
            return []
        out: list[Output] = []
        for report in self.vda.reports:
            task = self.dispatch.book.get(report.task_id)
            if task is None or not self.dispatch.owns(task):
                continue
            out += self.dispatch.status(robot_id=report.robot_id, task_id=report.task_id, state=report.state,
                                        reason=report.reason, progress=report.progress, now_ns=now_ns) or []
        self.vda.reports.clear()
        return out

    def _commit(self, out: list[Output], consumed: bool) -> None:
        """Begin the round's transaction on `_producer`, produce its events and commands, send its consumer
        offsets, and hand the commit to the committer thread (`_finish`), which commits it after the round before.
        A round Kafka refuses is aborted and rolled back (`_rollback`), to be redone; only a fatal error (this
        instance fenced: another with its `instance_id`, or a stall so long that the broker aborted the
        transaction itself) raises, here or from a later `step()`."""
        producer = self._producer
        if self._inflight:  # the round before it in its partitions first (it may still be committing)
            before, finished = self._inflight[-1]
            deadline = time.monotonic() + self._stuck_s
            while not before.delivered.wait(0.05) and not finished.done():
                if time.monotonic() > deadline:
                    raise self._committer.given_up(self._stuck_s)
        now = time.time_ns()
        try:
            producer.begin_transaction()
            for record in coalesce(out):
                if isinstance(record, EventRecord):
                    value = None if record.event is None else encode_event(record.event)
                    self._produce(self.topics.events, record.shard, record.task_id.encode(), value)
                elif isinstance(record, Forward):
                    self._produce(self.topics.submit, record.shard, record.task_id.encode(), record.payload)
                elif self.vda is not None and self.vda.knows(record.robot_id):  # an order or cancelOrder
                    for vda_record in self.vda.command(record, now):
                        self._produce(vda_record.topic, ANY_PARTITION, vda_record.key.encode(), vda_record.value)
                else:
                    self._produce(self.topics.commands, record.shard, record.robot_id.encode(),
                                  self.records.command(record, now))
            for vda_record in self._extra:  # pauses asked for, stateRequests to silent vehicles
                self._produce(vda_record.topic, ANY_PARTITION, vda_record.key.encode(), vda_record.value)
            if consumed:
                positions = [tp for tp in self._group.position(self._group.assignment()) if tp.offset >= 0]
                group = self._group.consumer_group_metadata()
                self._offsets.call(self._offsets_s, self._patiently, "take the round's offsets",
                                   lambda timeout: producer.send_offsets_to_transaction(positions, group, timeout))
        except KafkaException as exc:
            self._refused(producer, exc)
            return
        read_ns, inputs = self._round_read
        round_ = _Round(producer, out, consumed, read_ns, inputs, now)
        self._inflight.append((round_, self._committer.submit(self._finish, round_)))
        self._producer = self._producers[(self._producers.index(producer) + 1) % len(self._producers)]

    def _refused(self, producer: Any, exc: KafkaException) -> None:
        """A round Kafka refused while it was built: aborted and rolled back; anything else raises."""
        why = _refusal(exc)
        self._patiently("abort the round", producer.abort_transaction)
        self._rollback(why)

    def _finish(self, round_: _Round) -> _Round:
        """The committer thread: commit the round (the one before it is committed by now), or abort it when a round
        before it failed. A commit is retried past the transaction timeout: by then the broker has aborted the
        transaction and says so (an abortable or fatal error), while an abort is not allowed once a commit began."""
        producer = round_.producer
        try:
            if self._poisoned:
                round_.failed = "a round before it failed"
                round_.delivered.set()
                self._patiently("abort the round", producer.abort_transaction)
                return round_
            producer.flush(2 * self.config.kafka.transaction_timeout_s)  # its records appended: the next may go
            round_.delivered.set()
            try:
                self._patiently("commit the round", producer.commit_transaction,
                                2 * self.config.kafka.transaction_timeout_s)
            except KafkaException as exc:
                round_.failed = _refusal(exc)
                self._poisoned = True
                self._patiently("abort the round", producer.abort_transaction)
                return round_
        except KafkaException as exc:
            self._poisoned = True
            round_.fatal = exc
            return round_
        finally:
            round_.delivered.set()
        round_.done_ns = time.time_ns()
        return round_

    def _settle(self, *, free: Any = None, every: bool = False) -> str | None:
        """Account for the rounds the committer finished, oldest first: all of them with `every`, those up to the
        last one on producer `free` (so it can begin another), and any done by now. Returns why a round failed
        (the rounds after it are waited for: the committer aborts them); raises a fatal error."""
        last = len(self._inflight) - 1 if every else max(
            (i for i, (round_, _) in enumerate(self._inflight) if round_.producer is free), default=-1)
        why: str | None = None
        taken = 0
        while self._inflight:
            future = self._inflight[0][1]
            if taken > last and why is None and not future.done():
                break
            self._inflight.popleft()
            taken += 1
            try:
                round_ = self._round_result(future)
            except KafkaException:
                self._inflight.clear()
                raise
            if round_.fatal is not None:
                for _, later in self._inflight:  # aborted by the committer, or failing the same way
                    try:
                        self._round_result(later)
                    except KafkaException:
                        break
                self._inflight.clear()
                raise round_.fatal
            if round_.failed is not None:
                why = why or round_.failed
            else:
                self._committed(round_)
        return why

    def _round_result(self, future: Future[_Round]) -> _Round:
        """A round's end from the committer, waited for at most `_stuck_s` (then a fatal error)."""
        return self._committer.result(future, self._stuck_s)

    def _drain(self) -> str | None:
        """Wait for every round in flight; why one failed, if one did (`_settle`)."""
        return self._settle(every=True)

    def _forget(self) -> None:
        """Forget fleet and tasks (decisions since the last commit among them); the view reads them again."""
        self.dispatch.reset()
        if self.vda is not None:
            self.vda.reset()
        self._requested.clear()
        self.metrics.shards_owned.set(0)
        self.view.rewind()
        self._poisoned = False

    def _committed(self, round_: _Round) -> None:
        """A committed round: its metrics, hops, assignments and latencies."""
        self.metrics.transactions.inc()
        if round_.consumed:
            self._hop("round", round_.begun_ns - round_.read_ns, round_.inputs)
            self._hop("commit", round_.done_ns - round_.begun_ns, round_.inputs)
        for record in round_.out:
            if isinstance(record, Command):
                self.metrics.commands.labels("assign" if record.action == ASSIGN else "cancel").inc()
                if record.action == ASSIGN:
                    self.assigned += 1
                    requested = self._requested.pop(record.task.task_id, None)
                    if requested is not None:
                        self.metrics.latency.observe((round_.done_ns - requested) / 1e9)
                        if self.latencies_ns is not None:
                            self.latencies_ns.append(round_.done_ns - requested)
            elif isinstance(record, EventRecord) and record.event is not None and record.event.task.terminal:
                self._requested.pop(record.task_id, None)

    def _patiently(self, what: str, call: Callable[[float], object], within_s: float | None = None) -> None:
        """`call(timeout)` again while Kafka answers with a retriable error (a stalled or restarting broker),
        for up to `within_s` in all (default `transaction_timeout_s`: past it the broker aborts the transaction)."""
        kafka = self.config.kafka
        within_s = kafka.transaction_timeout_s if within_s is None else within_s
        deadline = time.monotonic() + within_s
        waited = False
        while True:
            try:
                call(max(0.1, min(kafka.connect_timeout_s, deadline - time.monotonic())))
            except KafkaException as exc:
                error = kafka_error(exc)
                if error is None or not worth_retrying(error) or time.monotonic() >= deadline:
                    raise
                if not waited:
                    waited = True
                    log.warning("instance %s: Kafka did not %s yet (%s); trying again for up to %g s",
                                self.instance_id, what, error.str(), within_s)
                continue
            if waited:
                log.info("instance %s: Kafka did %s after all", self.instance_id, what)
            return

    def _rollback(self, why: str) -> None:
        """Undo this instance's decisions since its last commit, as a new assignment would: forget fleet and
        tasks and read them again from the start of the view topics, and consume the owned partitions again
        from their committed offsets, paused until the view has caught up. The rounds still in flight end first
        (committed, or aborted after a failed one), so the committed offsets are final."""
        log.warning("instance %s: %s; rebuilding its shards from %s", self.instance_id, why, self.topics.events)
        self._drain()
        self._forget()
        partitions = list(self._group.assignment())
        committed: list[TopicPartition] = []
        if partitions:
            self._group.pause(partitions)
            self._patiently("say the committed offsets",
                            lambda timeout: committed.extend(self._group.committed(partitions, timeout=timeout)))
        for tp in committed:
            self._group.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
        self._paused = partitions
        self._pending_shards = frozenset(p.partition for p in partitions if p.topic == self.topics.status)
        self._pending = None
        self._rebuilding = True

    def _produce(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        produce_patiently(self._producer, topic, value, key, partition)

    def _malformed(self, msg: KafkaMessage, exc: Exception) -> None:
        """A record that did not decode: a format mismatch (named once, then counted) or a malformed record."""
        topic, where = msg.topic() or "", f"{msg.topic()}[{msg.partition()}]@{msg.offset()}"
        mismatch = self.records.mismatch(topic, msg.value() or b"", where)
        if mismatch is None:
            self.drops(f"malformed {topic}", f"{where}: {exc}")
            return
        self.dispatch.counts["format mismatch"] += 1
        self.metrics.dropped.labels("format mismatch").inc()
        if mismatch.first:
            log.error("instance %s: %s", self.instance_id, mismatch)

    def _gauges(self, now_ns: int) -> None:
        for state, count in self.dispatch.book.counts().items():
            self.metrics.tasks.labels(state).set(count)
        stale = self.dispatch.stale_after_ns
        self.metrics.robots_online.set(self.dispatch.fleet.reachable_count(now_ns, stale))

    def summary(self) -> dict[str, Any]:
        """Tasks per state, robots known, shards owned, drops by reason."""
        return {"tasks": self.dispatch.book.counts(), "robots": len(self.dispatch.fleet),
                "shards": sorted(self.dispatch.owned), "dropped": dict(self.dispatch.counts),
                "assigned": self.assigned, "done": self.dispatch.book.counts()[TaskState.DONE.value],
                "misplaced_status": self.misplaced}

    def close(self) -> None:
        """Let the rounds in flight end, leave the group (the shards move at once) and close the clients."""
        try:
            try:
                why = self._drain()
            except KafkaException as exc:  # fenced while closing: the next owner redoes what was not committed
                why = str(exc)
            if why is not None:
                log.warning("instance %s: %s; the next owner of its shards redoes it", self.instance_id, why)
            self._group.close()
        finally:
            self._committer.shutdown()  # a stuck one is left behind
            self._offsets.shutdown()
            self.view.close()
            for producer in self._producers:
                try:
                    producer.flush(self.config.kafka.connect_timeout_s)
                except KafkaException as exc:  # fenced: its transaction is aborted, the new owner redoes it
                    log.warning("instance %s: a producer ended fenced (%s); the next owner of its shards redoes "
                                "what it had not committed", self.instance_id, exc)
            self.records.close()


_READS: dict[str, Callable[[CoordinatorInstance, float], list[KafkaMessage]]] = {
    "window": CoordinatorInstance._read_window,
    "commit": CoordinatorInstance._read_paced,
}
"""How a round reads, by `kafka.round_pacing`."""
