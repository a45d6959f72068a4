"""Benchmark: fleet coordinator assignments/s and latency on one instance, with 100, 1,000 and 10,000 robots,
against the raw limits measured in the same run, on a private Kafka.

Per fleet size N: N robots announce themselves (RobotState, presence); M task requests wait on the submit
topic; one coordinator instance (in this process) consumes them and commits, per batch, the task events,
the TaskCommands and the consumer offsets in one Kafka transaction. Measured:
  coordinator  assignments/s (M / time to the last committed command, all M waiting at the start);
               p50/p99 latency, request produced -> its command committed, for requests arriving at --rate
               (open loop, below saturation: 1,000 with --quick, else 2,000; after warm-up rounds of half as
               many until Kafka's JIT takes under 10% of a core in two in a row, at most 16), with its hops
               (request produced -> read by the instance, read -> transaction begins, transaction begins ->
               committed), Kafka's CPU and JIT during it, and for the backlog (there it is mostly waiting in line)
  policy       the pure assignment policy alone over the same fleet and tasks (plan())
  check        the periodic check (timeouts, lost robots; every 500 ms, inside a round) alone over the same
               fleet with one open task per robot; and the garbage collector's pauses in the open loop
  kafka        bare confluent-kafka: M pre-encoded command records in transactions of 1,000 (rate), and
               transactions touching every commands and events partition, as a coordinator round does,
               one after another for as long as the open loop runs (latency: the floor under the coordinator's)
and prints the ratios (open-loop p99 / the round-shaped transaction's p99 measured after it: goal <= 2; the
transaction is also measured before the coordinator runs). The machine is shared:
figures are noisy. Last line: one JSON object.

  python bench/coordinator.py [--quick] [--tasks M] [--robots 100,1000] [--kafka HOST:PORT]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from swarm_bridge.brokers import Kafka, free_port
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.assignment import plan
from swarm_bridge.coordinator.core.dispatch import ASSIGN, Command
from swarm_bridge.coordinator.core.tasks import Target, TaskRequest, new_task
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.kafka.snapshot import submit_tasks
from swarm_bridge.coordinator.kafka.topics import ensure_topics
from swarm_bridge.coordinator.wiring import build_dispatch
from swarm_bridge.fleetbench.figures import JIT_SETTLED_PERCENT
from swarm_bridge.fleetbench.procstat import JIT, ProcSampler, Usage
from swarm_bridge.fleetbench.rounds import add_round_options, round_settings
from swarm_bridge.routing.presence import presence_payload
from swarm_bridge.routing.sharding import shard_of
from swarm_bridge.signals import terminate_as_interrupt
from swarm_bridge.sim.records import KafkaRobotRecords, robot_state_body

CAPABILITIES = {"amr": ["navigate", "pick"], "drone": ["fly", "inspect"], "arm": ["pick", "place"]}
KINDS = ["navigate", "pick", "fly", "inspect", "place"]
SHARDS = 12
WARMUP_ROUNDS = 16  # warm-up rounds at most, while Kafka's JIT still compiles
SETTLED_ROUNDS = 2  # JIT settled: this many rounds in a row under JIT_SETTLED_PERCENT (one quiet round can be a lull)
SIDE_M = 200.0


def config_for(host: str, port: int, registry: Path, robots: int, tasks: int,
               round_window_ms: float | None = None, round_pacing: str | None = None) -> CoordinatorConfig:
    tag = uuid.uuid4().hex[:6]
    rounds = round_settings(round_window_ms, round_pacing)
    return validate_config({
        "fleet": "bench", "shards": SHARDS,
        "kafka": {"host": host, "port": port, "group": f"bench-{tag}", "instance_id": f"bench-{tag}", **rounds},
        "topics": {n: f"b{tag}.{n}" for n in ("submit", "state", "status", "presence", "commands", "events")},
        "registry": str(registry), "capabilities": CAPABILITIES,
        # no robot here accepts a task: none may time out and be assigned again (30 s by default; with a long
        # warm-up thousands did, and their replanning, not the requests, filled the rounds)
        "tasks": {"robot_offline_after_s": 3600, "accept_timeout_s": 3600},
        "policy": {"max_queue": math.ceil(3 * tasks / robots) + 2},
    }, CoordinatorConfig)


def announce(config: CoordinatorConfig, robots: int) -> None:
    """N robots on a square site: one RobotState and one presence record each."""
    ensure_topics(config)
    records = KafkaRobotRecords(fmt=config.robot_format, registry=config.registry or "",
                                state_topic=config.topics.state, status_topic=config.topics.status,
                                commands_topic=config.topics.commands)
    producer = Producer({"bootstrap.servers": config.kafka.servers, "linger.ms": 20})
    rng = random.Random(robots)
    now = time.time_ns()
    kinds = list(CAPABILITIES)
    for i in range(robots):
        kind = kinds[i % 3]
        robot_id = f"{kind}_{i:05d}"
        body = robot_state_body(robot_id, kind, CAPABILITIES[kind], x=rng.uniform(0, SIDE_M), y=rng.uniform(0, SIDE_M),
                                battery=rng.uniform(30, 100), now_ns=now)
        for topic, value in ((config.topics.state, records.state_record(body, seq=1, now_ns=now)),
                             (config.topics.presence, presence_payload(robot_id, "online"))):
            while True:
                try:
                    producer.produce(topic, key=robot_id.encode(), value=value,
                                     partition=shard_of(robot_id, SHARDS))
                    break
                except BufferError:
                    producer.poll(0.05)
    producer.flush(60)


def task_docs(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [{"task_id": f"job-{seed}-{i:06d}", "kind": KINDS[i % 5], "priority": rng.randrange(4),
             "target": {"x": rng.uniform(0, SIDE_M), "y": rng.uniform(0, SIDE_M)}} for i in range(count)]


def paced(config: CoordinatorConfig, docs: list[dict[str, Any]], rate_per_s: float) -> threading.Thread:
    """Submit `docs` at `rate_per_s` from a thread (an open-loop load, for latency below saturation). The producer
    is connected and knows the topic before the first request: its start-up is not the coordinator's latency."""
    producer = Producer({"bootstrap.servers": config.kafka.servers, "linger.ms": 0})
    producer.list_topics(config.topics.submit, timeout=30)

    def run() -> None:
        start = time.perf_counter()
        for i, doc in enumerate(docs):
            delay = start + i / rate_per_s - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            producer.produce(config.topics.submit, key=doc["task_id"].encode(), value=json.dumps(doc).encode(),
                             partition=shard_of(doc["task_id"], SHARDS))
            producer.poll(0)
        producer.flush(30)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class GcPauses:
    """The garbage collector's pauses in this process (the coordinator's), per generation, while started."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[int]] = {0: [], 1: [], 2: []}
        self._began = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter_ns()
        elif self._began:  # not a collection that began before this was started
            self.pauses[info["generation"]].append(time.perf_counter_ns() - self._began)
            self._began = 0

    def stop(self) -> dict[str, Any]:
        gc.callbacks.remove(self._callback)
        return {f"gen{g}": {"count": len(p), "max_ms": round(max(p, default=0) / 1e6, 2),
                            "total_ms": round(sum(p) / 1e6, 1)} for g, p in self.pauses.items()}


def check_ms(config: CoordinatorConfig, fleet: Any, now_ns: int) -> dict[str, Any]:
    """The coordinator's periodic check (timeouts, lost robots) alone, over this fleet with one open task per
    robot, as a fleet at work has: median and slowest of 20 checks (ms). It runs every 500 ms inside a round."""
    probe = build_dispatch(config)
    probe.fleet, probe.owned = fleet, frozenset(range(SHARDS))
    for doc in task_docs(len(fleet), 99):
        probe.request(json.dumps(doc).encode(), doc["task_id"], now_ns)
    for _ in range(len(fleet) // probe.assign_limit + 2):  # assign them (the first check also walks every task)
        probe.tick(now_ns)
    samples = []
    for i in range(20):
        start = time.perf_counter_ns()
        probe.tick(now_ns + i, check=True)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return {"check_ms": samples[10] / 1e6, "check_max_ms": samples[-1] / 1e6,
            "check_open_tasks": len(probe.book.active)}


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values) or [0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] / 1e6


def kafka_sampler(kafka_pid: int | None) -> ProcSampler:
    """CPU of the private Kafka (its JIT apart) from now on; samples nothing for a Kafka of someone else's."""
    sampler = ProcSampler(lambda: {"kafka": [kafka_pid]} if kafka_pid else {})
    sampler.start()
    return sampler


def run_coordinator(config: CoordinatorConfig, robots: int, tasks: int, paced_tasks: int,
                    rate_per_s: float, kafka_pid: int | None) -> dict[str, Any]:
    announce(config, robots)
    instance = CoordinatorInstance(config, keep_latencies=True)
    deadline = time.monotonic() + 120
    while (not instance.dispatch.owned or len(instance.dispatch.fleet) < robots) and time.monotonic() < deadline:
        instance.step()
    # Warm-up, not measured: the same open loop, in rounds of half the measured tasks, until Kafka's JIT compiling
    # (a fresh broker compiles for a minute or more under load) takes under JIT_SETTLED_PERCENT of a core in
    # SETTLED_ROUNDS rounds in a row, at most WARMUP_ROUNDS; also the clients' connections and metadata. A private
    # Kafka only (its pid is known). One round under it was not enough: 7.5 % in it, then 16-18 % in the open loop.
    jit: list[float] = []
    for round_ in range(WARMUP_ROUNDS):
        sampler = kafka_sampler(kafka_pid)
        warmup = paced(config, task_docs(paced_tasks // 2, robots + 2 + round_ * 1000), rate_per_s)
        goal = instance.assigned + paced_tasks // 2
        deadline = time.monotonic() + 120
        while instance.assigned < goal and time.monotonic() < deadline:
            instance.step()
        warmup.join(timeout=30)
        jit.append(sampler.stop().get("kafka" + JIT, Usage(0.0, 0.0)).cpu_percent)
        settled = len(jit) >= SETTLED_ROUNDS and all(p < JIT_SETTLED_PERCENT for p in jit[-SETTLED_ROUNDS:])
        if kafka_pid is None or settled:
            break
    warmed = instance.assigned
    sampler = kafka_sampler(kafka_pid)
    instance.latencies_ns = []
    # Open loop below saturation: latency of single requests, request produced -> command committed, and its hops.
    assert instance.hops_ns is not None  # keep_latencies
    for kept in instance.hops_ns.values():
        kept.clear()
    pauses = GcPauses()
    sender = paced(config, task_docs(paced_tasks, robots + 1), rate_per_s)
    deadline = time.monotonic() + 120
    while instance.assigned < warmed + paced_tasks and time.monotonic() < deadline:
        instance.step()
    sender.join(timeout=30)
    usage = sampler.stop()
    gc_pauses = pauses.stop()
    open_loop = list(instance.latencies_ns or [])
    hops = {hop: {"p50_ms": percentile(values, 0.5), "p99_ms": percentile(values, 0.99), "count": len(values)}
            for hop, values in instance.hops_ns.items() if values}
    # Backlog: every request waiting at once; throughput, and latency under saturation (batch time).
    docs = task_docs(tasks, robots)
    submit_tasks(config, docs)
    instance.latencies_ns = []
    start = time.perf_counter()
    deadline = time.monotonic() + 600
    while instance.assigned < warmed + paced_tasks + tasks and time.monotonic() < deadline:
        instance.step()
    elapsed = time.perf_counter() - start
    backlog = instance.latencies_ns
    fleet = instance.dispatch.fleet
    policy = instance.dispatch.policy
    now = time.time_ns()
    requests = [new_task(TaskRequest(d["task_id"], d["kind"], Target(d["target"]["x"], d["target"]["y"]),
                                     d["priority"]), now) for d in docs]
    t0 = time.perf_counter()
    planned = plan(requests, fleet, {}, policy, now_ns=now, stale_after_ns=instance.dispatch.stale_after_ns)
    policy_s = time.perf_counter() - t0
    check = check_ms(config, fleet, now)
    sample = Command(SHARDS - 1, "amr_00000", ASSIGN, requests[0], "x#1")
    payload = instance.records.command(sample, now)
    assigned = instance.assigned - paced_tasks - warmed
    instance.close()
    return {"assigned": assigned, "assign_per_s": assigned / elapsed,
            "p50_ms": percentile(open_loop, 0.5), "p99_ms": percentile(open_loop, 0.99),
            "open_loop_rate_per_s": rate_per_s, "open_loop_tasks": len(open_loop), "open_loop_hops": hops,
            "open_loop_gc": gc_pauses, **check,
            "warmup_kafka_jit_percent": jit,
            "open_loop_kafka_percent": usage["kafka"].cpu_percent if "kafka" in usage else None,
            "open_loop_kafka_jit_percent": usage["kafka" + JIT].cpu_percent if "kafka" + JIT in usage else 0.0,
            "backlog_p50_ms": percentile(backlog, 0.5), "backlog_p99_ms": percentile(backlog, 0.99),
            "policy_per_s": len(planned) / policy_s, "policy_planned": len(planned), "command_bytes": len(payload),
            "payload": payload}


def raw_kafka(bootstrap: str, topic: str, payload: bytes, count: int) -> float:
    """Bare confluent-kafka: `count` command records, transactions of 1,000, to the coordinator's topic."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"raw-{uuid.uuid4().hex[:6]}",
                         "linger.ms": 5, "compression.type": "lz4"})
    producer.init_transactions(30)
    start = time.perf_counter()
    for first in range(0, count, 1000):
        producer.begin_transaction()
        for i in range(first, min(count, first + 1000)):
            while True:
                try:
                    producer.produce(topic, key=b"amr_00000", value=payload, partition=i % SHARDS)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.commit_transaction(30)
    return count / (time.perf_counter() - start)


def raw_txn_latency(bootstrap: str, topics: tuple[str, str], payload: bytes, seconds: float) -> dict[str, Any]:
    """Bare confluent-kafka, transactions shaped like a coordinator round (one record on every partition of
    the commands and events topics) for `seconds` (at least 100): p50 and p99 (ms) of begin -> committed. The
    floor under the coordinator's latency: a broker writes a commit marker to every partition a transaction
    touched. As long as the open loop, so both p99s see as many of Kafka's collections; the p99 of each 100 in
    turn shows how far a short sample strays."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"raw-lat-{uuid.uuid4().hex[:6]}",
                         "linger.ms": 5, "retry.backoff.ms": 10, "retry.backoff.max.ms": 100})
    producer.init_transactions(30)
    samples: list[int] = []
    end = time.monotonic() + seconds
    while len(samples) < 100 or time.monotonic() < end:
        start = time.perf_counter_ns()
        producer.begin_transaction()
        for topic in topics:
            for partition in range(SHARDS):
                producer.produce(topic, key=b"amr_00000", value=payload, partition=partition)
        producer.commit_transaction(30)
        samples.append(time.perf_counter_ns() - start)
        time.sleep(1 / 200)
    return {"p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99), "count": len(samples),
            "p99_ms_per_100": [round(percentile(samples[i:i + 100], 0.99), 1)
                               for i in range(0, len(samples) - 99, 100)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 tasks per fleet size (default 10,000)")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per fleet size")
    parser.add_argument("--kafka", metavar="HOST:PORT", help="use this Kafka instead of a private one")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop request rate for latency (default 200/s)")
    parser.add_argument("--kafka-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="a server.properties key of the private Kafka over the project's own (repeatable)")
    add_round_options(parser)
    parser.add_argument("--robots", default="100,1000,10000", help="fleet sizes, comma-separated (default "
                        "100,1000,10000)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # as the coordinator's command does: what the imports built is out of the garbage collector's sight
    gc.collect()
    gc.freeze()
    tasks = args.tasks or (2000 if args.quick else 10_000)
    paced_tasks = 1000 if args.quick else 2000  # the open loop (5 s at 200/s: its p99 is the 10th slowest)
    open_loop_s = paced_tasks / args.rate  # the bare transactions run as long, before and after it
    results: dict[str, Any] = {"tasks_per_size": tasks, "shards": SHARDS, "kafka_settings": args.kafka_setting,
                               "round_window_ms": args.round_window_ms, "round_pacing": args.round_pacing}
    with tempfile.TemporaryDirectory(prefix="bench-coordinator-") as tmp:
        kafka = None
        if args.kafka:
            host, _, port = args.kafka.rpartition(":")
            bootstrap, kafka_host, kafka_port = args.kafka, host, int(port)
        else:
            settings = dict(item.partition("=")[::2] for item in args.kafka_setting)
            kafka = Kafka(run_dir=Path(tmp) / "kafka", port=free_port(), settings=settings)
            kafka.start()
            bootstrap, kafka_host, kafka_port = kafka.bootstrap, "127.0.0.1", kafka.port
        try:
            sizes: dict[str, Any] = {}
            for robots in (int(n) for n in args.robots.split(",")):
                # every task the instance may see (warm-up, open loop, backlog) fits in the robots' queues
                seen = tasks + paced_tasks + WARMUP_ROUNDS * (paced_tasks // 2)
                config = config_for(kafka_host, kafka_port, Path(tmp) / "registry", robots, seen,
                                    args.round_window_ms, args.round_pacing)
                ensure_topics(config)
                # the bare transactions go to topics shaped as the coordinator's (as many partitions), not to
                # its own: its view would read their records as malformed task events
                bare = config_for(kafka_host, kafka_port, Path(tmp) / "registry", robots, tasks)
                ensure_topics(bare)
                bare_topics = (bare.topics.commands, bare.topics.events)
                before = raw_txn_latency(bootstrap, bare_topics, b"\x00" * 200, open_loop_s)
                figures = run_coordinator(config, robots, tasks, paced_tasks, args.rate,
                                          kafka.pid if kafka is not None else None)
                figures.update({f"kafka_raw_txn_before_{k}": v for k, v in before.items()})
                payload = figures.pop("payload")
                figures["kafka_raw_per_s"] = raw_kafka(bootstrap, config.topics.commands, payload, tasks)
                after = raw_txn_latency(bootstrap, bare_topics, payload, open_loop_s)
                figures.update({f"kafka_raw_txn_{k}": v for k, v in after.items()})
                figures["vs_kafka_raw"] = figures["assign_per_s"] / figures["kafka_raw_per_s"]
                figures["vs_policy"] = figures["assign_per_s"] / figures["policy_per_s"]
                figures["p99_vs_raw_txn_p99"] = figures["p99_ms"] / max(1e-6, figures["kafka_raw_txn_p99_ms"])
                sizes[str(robots)] = figures
                hops = ", ".join(f"{hop} {v['p50_ms']:.1f}/{v['p99_ms']:.1f}"
                                 for hop, v in figures["open_loop_hops"].items())
                print(f"{robots:>6} robots: {figures['assign_per_s']:8.0f} assignments/s  latency at "
                      f"{args.rate:g}/s p50 {figures['p50_ms']:6.1f} ms p99 {figures['p99_ms']:6.1f} ms, backlog p99 "
                      f"{figures['backlog_p99_ms']:6.0f} ms  | policy alone "
                      f"{figures['policy_per_s']:8.0f}/s ({figures['vs_policy']:.2f}x)  | bare kafka "
                      f"{figures['kafka_raw_per_s']:8.0f} records/s ({figures['vs_kafka_raw']:.3f}x); "
                      f"{figures['kafka_raw_txn_count']} round-shaped transactions p50 "
                      f"{figures['kafka_raw_txn_p50_ms']:.1f} ms p99 "
                      f"{figures['kafka_raw_txn_p99_ms']:.1f} ms (p99 ratio {figures['p99_vs_raw_txn_p99']:.2f}, goal "
                      f"<= 2)\n        hops p50/p99 ms: {hops}; Kafka during it "
                      f"{figures['open_loop_kafka_percent']}% of a core + JIT "
                      f"{figures['open_loop_kafka_jit_percent']}% "
                      f"(warm-up rounds' JIT: {figures['warmup_kafka_jit_percent']}); this process's collections "
                      f"{figures['open_loop_gc']}; periodic check over {figures['check_open_tasks']} open tasks "
                      f"{figures['check_ms']:.2f} ms (slowest {figures['check_max_ms']:.2f})", flush=True)
            results["sizes"] = sizes
            first = next(iter(sizes.values()))["assign_per_s"]
            results["growth_vs_first"] = {k: v["assign_per_s"] / first for k, v in sizes.items()}
            results["goal_1000_robots_per_s"] = 2000
            if "1000" in sizes:
                results["goal_met"] = sizes["1000"]["assign_per_s"] >= 2000
            results["goal_p99_vs_raw_txn"] = 2.0
            results["p99_goal_met"] = all(v["p99_vs_raw_txn_p99"] <= 2.0 for v in sizes.values())
        finally:
            if kafka is not None:
                kafka.stop()
    print("machine shared with other jobs (2 cores): figures are noisy")
    print(json.dumps(results))


if __name__ == "__main__":
    with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        main()
