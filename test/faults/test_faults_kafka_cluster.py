"""A partition leader of a 3-node Kafka cluster SIGKILLed under load, and brought back on its data.

Real parts all along: simulated robots (the fleet simulator, MQTT QoS 1) -> Mosquitto -> a `swarm-bridge gateway`
process -> the cluster (every topic 3 replicas, min.insync.replicas 2), and a `swarm-bridge coordinator` process
(kafka mode, transactions) assigning tasks submitted before, during and after the fault; the robots answer its
commands through the gateway. While records and tasks flow, the node leading a live partition of an up topic
(preferably also the coordinator's transaction coordinator, else a command partition's leader) is SIGKILLed, left
down a few seconds, and started again on the same data directory.

Then every record the robots sent is in Kafka once per (robot, stream, seq) and in seq order per stream, and
every task ended done exactly once after one assignment. Prints one `FIGURES {...}` line (docs/promises.md).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_LOG_APPEND_TIME, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from swarm_bridge.brokers import KafkaCluster, Mosquitto, free_port
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.events import decode_event
from swarm_bridge.coordinator.core.tasks import TERMINAL, Task, TaskState
from swarm_bridge.coordinator.kafka.snapshot import TaskSubmitter
from swarm_bridge.fleetbench.hub import HubProcess, coordinator_doc, gateway_doc, namespace_gateway, scrape, wait_metric
from swarm_bridge.fleetbench.workers import WorkerPool
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.sim.records import read_head
from swarm_bridge.sim.robots import DEFAULT_MIX
from swarm_bridge.sim.session_fleet import CAPABILITIES, MIX_HZ, RobotPlan, robot_ids
from swarm_bridge.transport import TopicSpec, ensure_kafka_topics

pytestmark = pytest.mark.integration

SHARDS = 3  # partitions of every topic: each node leads about one of each
ROBOTS = 4  # x 72 msgs/s (the simulator's mix): ~290 msgs/s, every partition of the up topics live
SEND_S = 40.0  # robots send this long; the kill comes KILL_AFTER_S in (FIRST_EVENT_S later at most)
KILL_AFTER_S = 8.0
FIRST_EVENT_S = 15.0  # the kill waits this much longer at most for the coordinator's first task event
DOWN_S = 5.0  # the node stays down this long before it is started again
TASK_EVERY_S = 0.3  # one task submitted this often, from the start until AFTER_S past the node's return
AFTER_S = 6.0
DRAIN_S = 150.0  # generous: the machine is shared


@dataclass(frozen=True)
class Stored:
    """One record read back from Kafka: where it sits, the broker's append time (ms) and its value."""

    topic: str
    partition: int
    offset: int
    append_ms: int | None  # None on a CreateTime topic
    value: bytes


class Reader:
    """Every record of `topics` from the beginning (read_committed: aborted transactions never show), in a thread."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"cluster-reader-{uuid.uuid4().hex[:6]}",
                                  "enable.auto.commit": False, "isolation.level": "read_committed"})
        meta = self.consumer.list_topics(timeout=30).topics
        self.consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in meta[t].partitions])
        self.records: list[Stored] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = []
            for msg in self.consumer.consume(1000, 0.2):
                if msg.error() is None:
                    kind, stamp = msg.timestamp()
                    got.append(Stored(msg.topic() or "", msg.partition() or 0, msg.offset() or 0,
                                      stamp if kind == TIMESTAMP_LOG_APPEND_TIME else None, msg.value() or b""))
            with self._lock:
                self.records.extend(got)

    def snapshot(self) -> list[Stored]:
        with self._lock:
            return list(self.records)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.consumer.close()


class TaskFeed:
    """Submits one navigate task every TASK_EVERY_S from a thread, noting when each went (wall time)."""

    def __init__(self, config: CoordinatorConfig, prefix: str) -> None:
        self.submitter = TaskSubmitter(config)
        self.prefix = prefix
        self.sent: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="task-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(TASK_EVERY_S):
            task_id = f"{self.prefix}-{i:04d}"
            doc = {"task_id": task_id, "kind": "navigate", "target": {"x": float(i % 50), "y": 1.0}}
            self.sent[task_id] = time.time()
            self.submitter.send(json.dumps(doc).encode())
            i += 1

    def stop(self) -> int:
        """Stop submitting; how many requests Kafka did not confirm."""
        self._stop.set()
        self._thread.join(10)
        return self.submitter.close(60)


def _robot_ids(count: int, partitions: int) -> list[str]:
    """`count` robot ids whose keys cover every partition (so every partition of the up topics is live)."""
    chosen: list[str] = []
    covered: set[int] = set()
    for robot in robot_ids(1000):
        partition = shard_of(robot, partitions)
        if partition not in covered or len(covered) == partitions:
            chosen.append(robot)
            covered.add(partition)
        if len(chosen) == count:
            return chosen
    raise AssertionError("no robot ids cover every partition")


def _wait(check: Any, timeout_s: float, what: str, state: Any = None) -> None:
    """Poll `check` until true; AssertionError naming `what` (and `state()`, what is there) after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}"
                                 + (f": {state()}" if state is not None else ""))
        time.sleep(0.5)


def _leaders(admin: AdminClient, topic: str) -> dict[int, int]:
    """partition -> the node leading it, from the cluster's metadata."""
    return {p: meta.leader for p, meta in admin.list_topics(topic, timeout=30).topics[topic].partitions.items()}


def _victim(admin: AdminClient, up_topic: str, commands_topic: str) -> tuple[int, dict[str, Any]]:
    """The node to kill: a leader of a partition of `up_topic` (all live), preferably the transaction coordinator
    (leader of __transaction_state, which has one partition), else a leader of a command partition; and its roles."""
    up = _leaders(admin, up_topic)
    txn = _leaders(admin, "__transaction_state").get(0, -1)
    groups = _leaders(admin, "__consumer_offsets").get(0, -1)
    commands = _leaders(admin, commands_topic)
    candidates = sorted(set(up.values()) - {-1})
    assert candidates, f"no partition of {up_topic} has a leader: {up}"
    node = next((n for n in candidates if n == txn), None) or next(
        (n for n in candidates if n in commands.values()), candidates[0])
    roles = {"node": node, "leads_up_partitions": sorted(p for p, n in up.items() if n == node),
             "transaction_coordinator": node == txn, "group_coordinator": node == groups,
             "leads_command_partitions": sorted(p for p, n in commands.items() if n == node)}
    return node, roles


def _topic_replication(admin: AdminClient, topic: str) -> tuple[set[int], str]:
    meta = admin.list_topics(topic, timeout=30).topics[topic]
    (future,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    return {len(p.replicas) for p in meta.partitions.values()}, future.result(30)["min.insync.replicas"].value


def _check_records(stored: list[Stored], sent: Counter[tuple[str, str]], run: int) -> dict[str, int]:
    """Per (robot, stream): the set of seqs in Kafka against what was sent, copies past the first, and seq order
    along each partition (offset order) of the first copies."""
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    last: dict[tuple[str, str], int] = {}
    duplicates = foreign = 0
    backwards: list[str] = []
    for record in sorted(stored, key=lambda r: (r.topic, r.partition, r.offset)):
        head = read_head(record.value[5:])
        key = (head.robot_id, head.stream)
        if head.seq >> 32 != run:
            foreign += 1
            continue
        n = head.seq & 0xFFFFFFFF
        if n in seen[key]:
            duplicates += 1
            continue
        seen[key].add(n)
        if key in last and n < last[key]:
            backwards.append(f"{key[0]}/{key[1]}: {n} after {last[key]}")
        last[key] = max(n, last.get(key, n))
    lost = sum(len(set(range(count)) - seen.get(key, set())) for key, count in sent.items())
    beyond = sum(len({n for n in seqs if n >= sent.get(key, 0)}) for key, seqs in seen.items())
    assert not backwards, f"{len(backwards)} records out of seq order, first: {backwards[:5]}"
    return {"sent": sum(sent.values()), "in_kafka": sum(len(s) for s in seen.values()), "lost": lost,
            "duplicates": duplicates, "unexpected": beyond + foreign}


def _pause_ms(stored: list[Stored], topic: str, start_ms: int, end_ms: int) -> tuple[int, str]:
    """The longest gap between consecutive broker append times along one partition of `topic` (LogAppendTime)
    between `start_ms` and `end_ms`: how long the partition whose leader died took no record."""
    times: dict[tuple[str, int], list[int]] = defaultdict(list)
    for record in stored:
        if record.topic == topic and record.append_ms is not None and start_ms <= record.append_ms <= end_ms:
            times[(record.topic, record.partition)].append(record.append_ms)
    worst, where = 0, ""
    for (topic, partition), stamps in times.items():
        stamps.sort()
        gap = max((b - a for a, b in pairwise(stamps)), default=0)
        if gap > worst:
            worst, where = gap, f"{topic}[{partition}]"
    return worst, where


@pytest.fixture()
def hub(kafka_cluster: KafkaCluster, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The coordinator and the gateway processes on the cluster, topics of their own; every node up at the end."""
    tag = uuid.uuid4().hex[:6]
    ns, fleet = f"kc{tag}", f"kc{tag}"
    data_topics = [f"{ns}.{s.channel}.{s.name}" for s in DEFAULT_MIX]
    # the broker stamps arrival on the fast topics (the pause is read from it); robot_state keeps CreateTime: the
    # coordinator reads a robot's last-seen from it
    ensure_kafka_topics(kafka_cluster.bootstrap, [TopicSpec(t, SHARDS, {} if t.endswith("robot_state") else
                                                            {"message.timestamp.type": "LogAppendTime"})
                                                  for t in data_topics])
    registry = tmp_path / "registry"
    coord = coordinator_doc(fleet=fleet, kafka_port=kafka_cluster.node(1).port, registry=registry,
                            metrics_port=free_port(), shards=SHARDS, capabilities=CAPABILITIES)
    # the default transaction timeout (10 s) is no longer than the cluster's failover (a dead node fenced after
    # broker.session.timeout.ms, 9 s, then a new leader): the broker may abort a round and fence the instance,
    # which then starts again in its process (swarm_coordinator_restarts_total) and must still lose no task
    coord["kafka"] |= {"group": f"{tag}-coordinator", "instance_id": f"{tag}-coord", "port": None,
                       "bootstrap": kafka_cluster.bootstrap}  # every node: any one answering will do
    # a robot whose state partition lost its leader is silent until the new leader takes over (seconds): it is
    # not offline for that; tasks stay assigned to it. The robots' state stops with their sends (SEND_S), and an
    # instance that met librdkafka's send_offsets hang starts again ~20 s later: they stay online past that.
    coord["tasks"] = {"accept_timeout_s": 90, "run_timeout_s": 180, "robot_offline_after_s": 90}
    coord["topics"] = {"submit": f"{ns}.tasks.submit", "state": f"{ns}.state.robot_state",
                       "status": f"{ns}.event.task_status", "presence": f"{ns}.presence.status",
                       "commands": f"{ns}.command.task_command", "events": f"{ns}.coordinator.tasks"}
    gw = gateway_doc(fleet=fleet, mqtt_port=mosquitto.port, bootstrap=kafka_cluster.bootstrap, registry=registry,
                     metrics_port=free_port())
    namespace_gateway(gw, ns, tag)
    gw["mqtt"].pop("share_group")
    processes: list[HubProcess] = []
    try:
        coordinator = HubProcess("coordinator", "coordinator", coord, tmp_path, ": fleet ")
        processes.append(coordinator)
        wait_metric(coordinator.metrics_port, "swarm_coordinator_shards_owned", SHARDS, 120)
        gateway = HubProcess("gateway", "gateway", gw, tmp_path, ": running")
        processes.append(gateway)
        yield {"coordinator": coordinator, "gateway": gateway, "fleet": fleet, "data_topics": data_topics,
               "config": validate_config(coord, CoordinatorConfig)}
    finally:
        for process in reversed(processes):
            process.stop()
        for node in kafka_cluster.nodes:
            node.start()  # a no-op for a running node: the module's cluster whole again


def test_a_partition_leader_killed_under_load_loses_no_record_and_no_task(kafka_cluster: KafkaCluster,
                                                                          mosquitto: Mosquitto,
                                                                          hub: dict[str, Any]) -> None:
    coordinator: HubProcess = hub["coordinator"]
    gateway: HubProcess = hub["gateway"]
    config: CoordinatorConfig = hub["config"]
    admin = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap})
    up_topic = hub["data_topics"][0]  # the odometry topic: 20 records/s per robot
    for topic in [*hub["data_topics"], config.topics.commands, config.topics.events, config.topics.status]:
        assert _topic_replication(admin, topic) == ({3}, "2"), topic
    robots = _robot_ids(ROBOTS, SHARDS)
    run = 1
    reader = Reader(kafka_cluster.bootstrap, hub["data_topics"])
    events = Reader(kafka_cluster.bootstrap, [config.topics.events])
    pool = WorkerPool([RobotPlan(tuple(robots), mosquitto.port, run, fleet=hub["fleet"])])
    feed: TaskFeed | None = None
    try:
        start = time.time() + 1.0
        pool.go(start, SEND_S)
        feed = TaskFeed(config, f"{hub['fleet']}-task")
        # The kill comes KILL_AFTER_S in, and not before the coordinator assigns: on a fresh cluster its first
        # transaction waits for Kafka to make and load the transaction log, seconds on a slow machine.
        _wait(lambda: time.time() >= start + KILL_AFTER_S and len(events.snapshot()) > 0,
              KILL_AFTER_S + FIRST_EVENT_S, "a task event before the kill (the coordinator assigning)")
        node_id, roles = _victim(admin, up_topic, config.topics.commands)
        victim = kafka_cluster.node(node_id)
        commands_before = scrape(coordinator.metrics_port).get("swarm_coordinator_commands_total{action=assign}", 0.0)
        killed_at = time.time()
        victim.kill()
        time.sleep(DOWN_S)
        victim.start()
        back_at = time.time()
        time.sleep(AFTER_S)
        unconfirmed = feed.stop()
        sent, _summaries = pool.sent(SEND_S + 120)
        tasks = dict(feed.sent)

        def latest() -> dict[str, Task]:
            found = [decode_event(r.value) for r in events.snapshot() if r.value]  # no tombstones
            return {e.task.task_id: e.task for e in sorted(found, key=lambda e: e.task.version)}

        def drained() -> bool:
            ended = {t for t, task in latest().items() if task.state in TERMINAL}
            return len(reader.snapshot()) >= sum(sent.values()) and set(tasks) <= ended

        def missing() -> str:
            known = latest()
            open_tasks = {t: known[t].state.value if t in known else "no event" for t in tasks
                          if t not in known or known[t].state not in TERMINAL}
            return (f"{len(reader.snapshot())} of {sum(sent.values())} records; tasks not ended "
                    f"({len(open_tasks)}): {dict(list(open_tasks.items())[:10])}")

        _wait(drained, DRAIN_S, "every record in Kafka and every task ended", missing)
        time.sleep(2.0)  # a late copy or a second end of some task would show now
        coordinator_metrics = scrape(coordinator.metrics_port)
        gateway_metrics = scrape(gateway.metrics_port)
        coordinator_alive = coordinator.process.running
    finally:
        if feed is not None:
            feed.stop()
        final = pool.close()
        reader.close()
        events.close()
    stored, task_events = reader.records, [decode_event(r.value) for r in events.records if r.value]  # no tombstones
    figures = _check_records(stored, sent, run)
    assert unconfirmed == 0, f"{unconfirmed} task requests never confirmed by Kafka"
    assert (figures["lost"], figures["duplicates"], figures["unexpected"]) == (0, 0, 0), figures

    ends = Counter(e.task.task_id for e in task_events if e.task.state in TERMINAL)
    last = {e.task.task_id: e.task for e in sorted(task_events, key=lambda e: e.task.version)}
    twice = {task: n for task, n in ends.items() if n > 1}
    assert not twice, f"tasks ended more than once: {twice}"
    not_done = {t: last[t].state.value for t in tasks if last[t].state is not TaskState.DONE}
    assert not not_done, f"tasks not done: {not_done}"
    reassigned = {t: last[t].history for t in tasks if last[t].attempts != 1 or len(last[t].history) != 1}
    assert not reassigned, f"tasks assigned more than once: {reassigned}"
    phases = Counter("before" if at < killed_at else "during" if at < back_at else "after" for at in tasks.values())
    assert set(phases) == {"before", "during", "after"}, phases
    # each robot got exactly one assignment per task (a command delivered twice is dropped by its command_id)
    distinct_commands = sum(s["commands"] - s["duplicate_commands"] for s in final)
    assert distinct_commands == len(tasks), f"robots got {distinct_commands} distinct commands for {len(tasks)} tasks"
    assert coordinator_alive, "the coordinator process exited"
    commands_after = coordinator_metrics.get("swarm_coordinator_commands_total{action=assign}", 0.0)
    assert commands_after > commands_before, "the coordinator assigned nothing after the kill"

    pause_ms, paused = _pause_ms(stored, up_topic, int(killed_at * 1000) - 2000, int(back_at * 1000) + 10_000)
    coordinator_log = coordinator.process.log_text()
    print("FIGURES " + json.dumps({
        "case": "3-node Kafka cluster: partition leader SIGKILLed under load, restarted after "
                f"{DOWN_S:g} s", "killed": roles, "robots": ROBOTS, "msgs_per_s": ROBOTS * sum(MIX_HZ.values()),
        "records_sent": figures["sent"], "in_kafka": figures["in_kafka"], "lost": figures["lost"],
        "duplicates": figures["duplicates"], "pause_ms": pause_ms, "paused_partition": paused,
        "node_down_s": round(back_at - killed_at, 1),
        "tasks": len(tasks), "tasks_by_phase": dict(phases), "tasks_done_once": len(tasks),
        "commands_delivered_twice": sum(s["duplicate_commands"] for s in final),
        "coordinator_rounds_redone": coordinator_log.count("rebuilding its shards"),
        "coordinator_rebalances": coordinator_log.count(": assigned shards") - 1,
        "coordinator_restarts": coordinator_metrics.get("swarm_coordinator_restarts_total", 0.0),
        "gateway_records_redelivered": gateway_metrics.get("swarm_gateway_records_redelivered_total", 0.0)}))

