"""A step's figures, its verdict and the run's headline: pure functions over plain numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from swarm_bridge.fleetbench.ledger import percentile

__all__ = ["EMQX_MSGS_PER_CORE", "HUB", "JIT_SETTLED_PERCENT", "P99_GOAL_MS", "TASK_GOAL", "WARMUP_ROUNDS",
           "StepFigures", "bucket_quantile", "fails_badly", "headline", "holds", "hub_cost", "p99_by_second",
           "task_goal"]

P99_GOAL_MS = 50.0
# The task round trip's goal: p99 (ms) at this fleet size and task rate (submissions/s), every task done
TASK_GOAL = {"robots": 100, "task_rate_per_s": 200.0, "p99_ms": 100.0}
KEPT_UP = 0.95  # the simulator must offer this share of the mix's rate for the step to count
# The warm-up goes on (rounds of --warmup seconds) while Kafka's JIT compiling takes this much of a core or more:
# after 15 s at 50 robots on a busy machine it still took 14-23% during the steps, CPU the steps' hub lacked.
JIT_SETTLED_PERCENT = 10.0
WARMUP_ROUNDS = 4
HUB = ("gateway", "mosquitto", "kafka")  # the hub's own processes; the simulator, probe and coordinator are not
# EMQX's published MQTT -> Kafka benchmark: 100,000 QoS 1 1 KB msgs/s on one 32-vCPU node at 76% CPU
EMQX_MSGS_PER_CORE = 100_000 / (32 * 0.76)


@dataclass
class StepFigures:
    """One fleet size: traffic, delivery, latency, tasks, and CPU/RSS per process."""

    robots: int
    target_msgs_per_s: float
    offered_msgs_per_s: float
    delivered_msgs_per_s: float
    sent: int
    delivered: int
    lost: int
    duplicates: int
    unexpected: int
    p50_ms: float
    p99_ms: float
    consumer_p99_ms: float
    max_ms: float
    tasks_submitted: int
    tasks_done: int
    tasks_other_end: int
    task_p50_ms: float
    task_p99_ms: float
    sim_max_lag_ms: float
    connect_s: float
    drain_s: float = 0.0  # waited after sending for the last records (until all, or 5 s without progress)
    gateway_p50_ms: float = 0.0  # the gateway's own MQTT receive -> Kafka confirm (its histogram)
    gateway_p99_ms: float = 0.0
    gateway_dead_letters: float = 0.0
    gateway_deduplicated: float = 0.0
    broker_dropped: float = 0.0  # messages Mosquitto dropped in the step (queue limits), as the gateway reports it
    coordinator_status_off_shard: float = 0.0
    coordinator_transactions_per_s: float = 0.0  # its rounds committed, between the step's two scrapes (Kafka's
    # largest cost at high task rates is per transaction)
    task_rate_per_s: float = 0.0  # task requests submitted per second during the step
    task_seen_p99_ms: float = 0.0  # submit -> the done event read by the bench's probe (adds the probe's fetch wait)
    task_slowest_at_s: list[float] = field(default_factory=list)  # when the slowest 1% were submitted (s into the step)
    # p99 (ms) of each second's worth of records in the order the probe read them: a stall at the step's start
    # (e.g. the gateway busy with something once) shows as a high first value, a hub falling behind as a rising row
    p99_ms_by_second: list[float] = field(default_factory=list)
    kafka_pauses: dict[str, Any] = field(default_factory=dict)  # the private Kafka's stop-the-world pauses, sending
    # each hop of a task round trip: {hop: {"p50_ms", "p99_ms"}} (from the coordinator's and the gateway's
    # histograms: the bucket's upper bound; the robot's from its own clock readings)
    task_hops: dict[str, dict[str, float]] = field(default_factory=dict)
    # each task's own round trip cut into legs by its clock readings, the slowest 1% against all (task_legs.py)
    task_slowest_legs: dict[str, Any] = field(default_factory=dict)
    cpu_percent: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    # CPU per delivered record (µs) of each process and of the hub (HUB summed); records/s per busy hub core
    us_per_record: dict[str, float] = field(default_factory=dict)
    hub_us_per_record: float = 0.0
    hub_records_per_core: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def holds(step: StepFigures) -> bool:
    """The hub holds this fleet: every record delivered once, p99 within the goal, the mix really offered."""
    return (step.lost == 0 and step.duplicates == 0 and step.p99_ms <= P99_GOAL_MS
            and step.offered_msgs_per_s >= KEPT_UP * step.target_msgs_per_s)


def fails_badly(step: StepFigures) -> bool:
    """Far past the limit: more robots would only take longer (over 1% lost, p99 over 10 s, or less than
    half the offered rate delivered)."""
    return (step.lost > 0.01 * max(1, step.sent) or step.p99_ms > 10_000
            or step.delivered_msgs_per_s < 0.5 * step.offered_msgs_per_s)


def headline(steps: list[StepFigures]) -> int:
    """The largest fleet that holds (0 when none does)."""
    return max((s.robots for s in steps if holds(s)), default=0)


def task_goal(steps: list[StepFigures]) -> dict[str, Any] | None:
    """The task round trip's verdict on the step run at TASK_GOAL's fleet and task rate (None when none was): its
    p99 over how many tasks, and whether every task was done within the goal."""
    step = next((s for s in steps if s.robots == TASK_GOAL["robots"]
                 and s.task_rate_per_s >= TASK_GOAL["task_rate_per_s"]), None)
    if step is None:
        return None
    met = 0 < step.tasks_done == step.tasks_submitted and step.task_p99_ms <= TASK_GOAL["p99_ms"]
    return {**TASK_GOAL, "tasks": step.tasks_submitted, "done": step.tasks_done, "task_p99_ms": step.task_p99_ms,
            "met": met}


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile of what a cumulative histogram counted between two scrapes ({upper bound: count}):
    the upper bound of the first bucket holding it (so at most one bucket too high); 0.0 if it counted none."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return 0.0
    rank = q * counts[-1]
    return next(b for b, c in zip(bounds, counts, strict=True) if c >= rank)


def hub_cost(cpu_percent: dict[str, float], delivered_per_s: float) -> tuple[dict[str, float], float, float]:
    """CPU µs per delivered record of each process, of the hub (gateway + Mosquitto + Kafka), and the records/s
    one busy hub core carries at that cost; zeros when nothing was delivered (or the hub's CPU is unknown)."""
    if delivered_per_s <= 0:
        return {}, 0.0, 0.0
    per = {name: round(1e4 * pct / delivered_per_s, 1) for name, pct in cpu_percent.items()}
    hub = 1e4 * sum(cpu_percent.get(name, 0.0) for name in HUB) / delivered_per_s
    return per, round(hub, 1), round(1e6 / hub) if hub > 0 else 0.0


def p99_by_second(latencies_ms: list[float], per_s: float) -> list[float]:
    """The p99 (ms) of each run of `per_s` latencies (a second's worth of records, in the order they were read)."""
    size = max(1, round(per_s))
    return [round(percentile(latencies_ms[i:i + size], 0.99), 1) for i in range(0, len(latencies_ms), size)]
