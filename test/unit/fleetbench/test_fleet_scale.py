"""The fleet-scale benchmark's machinery: the pure ledger, template records and verdicts without brokers (one tiny
step through a real hub: integration/fleetbench/test_fleet_scale.py)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from swarm_bridge.codec.errors import RecordError
from swarm_bridge.fleetbench.errors import BenchSettingError
from swarm_bridge.fleetbench.figures import (
    EMQX_MSGS_PER_CORE,
    StepFigures,
    bucket_quantile,
    fails_badly,
    headline,
    holds,
    hub_cost,
    p99_by_second,
    task_goal,
)
from swarm_bridge.fleetbench.ledger import SeqLedger, percentile
from swarm_bridge.fleetbench.probe import TaskTally
from swarm_bridge.fleetbench.report import markdown, sim_us_per_msg
from swarm_bridge.fleetbench.run import ROBOTS_PER_WORKER, add_arguments, options_from, worker_count
from swarm_bridge.sim import DEFAULT_MIX, SimRobot
from swarm_bridge.sim.records import StreamTemplate, avro_long, read_head


def test_ledger_counts_in_order_records_once() -> None:
    ledger = SeqLedger(run=3)
    for n in range(5):
        ledger.add("r1", "imu", 3 << 32 | n)
    result = ledger.delivery({("r1", "imu"): 5})
    assert (result.sent, result.delivered, result.lost, result.duplicates, result.unexpected) == (5, 5, 0, 0, 0)


def test_ledger_finds_gaps_late_records_duplicates_and_foreign_runs() -> None:
    ledger = SeqLedger(run=1)
    for n in (0, 1, 4, 2, 4, 1):  # 3 never comes, 2 comes late, 4 and 1 twice
        ledger.add("r1", "odometry", 1 << 32 | n)
    ledger.add("r1", "odometry", 2 << 32 | 9)  # another run
    ledger.add("r2", "odometry", 1 << 32 | 0)  # a stream that said it sent nothing
    result = ledger.delivery({("r1", "odometry"): 6, ("r3", "imu"): 2})
    assert result.sent == 8
    assert result.lost == 1 + 1 + 2  # r1: 3 and 5; r3: both
    assert result.duplicates == 2
    assert result.unexpected == 1 + 1  # the foreign run, r2's record
    assert result.delivered == 4  # r1: 0, 1, 2, 4


def test_warmup_records_are_another_run_to_the_first_step() -> None:
    ledger = SeqLedger(run=3)  # the warm-up ran as run 2
    for n in range(4):
        ledger.add("r1", "imu", 3 << 32 | n)
    for n in range(6):  # the warm-up's records of the same robot and stream, arriving late
        ledger.add("r1", "imu", 2 << 32 | n)
    result = ledger.delivery({("r1", "imu"): 4})
    assert (result.sent, result.delivered, result.lost, result.duplicates) == (4, 4, 0, 0)
    assert result.unexpected == 6
    assert ledger.received() == 4


def test_warmup_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from(parser.parse_args([])).warmup_s == 25.0
    assert options_from(parser.parse_args(["--quick"])).warmup_s == 25.0  # Kafka's JIT settles in 25 s rounds
    opts = options_from(parser.parse_args(["--warmup", "0", "--warmup-robots", "7"]))
    assert (opts.warmup_s, opts.warmup_robots) == (0.0, 7)


def test_the_warmup_runs_at_the_largest_step_up_to_the_goal() -> None:
    """Kafka's JIT compiles again when the load grows: the warm-up's fleet is the one judged (at most 300)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from(parser.parse_args(["--quick"])).warmup_robots == 100
    assert options_from(parser.parse_args(["--steps", "300"])).warmup_robots == 300
    assert options_from(parser.parse_args([])).warmup_robots == 300  # steps up to 1,000
    assert options_from(parser.parse_args(["--steps", "10,20"])).warmup_robots == 20
    with pytest.raises(ValueError, match="--warmup -1"):
        options_from(parser.parse_args(["--warmup", "-1"]))


def test_partition_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    opts = options_from(parser.parse_args([]))
    assert (opts.shards, opts.up_partitions) == (4, 1)  # one produce request per partition: few, fuller ones
    opts = options_from(parser.parse_args(["--shards", "2", "--up-partitions", "4"]))
    assert (opts.shards, opts.up_partitions) == (2, 4)
    assert options_from(parser.parse_args([])).linger_ms is None  # the bench's gateway config: 10 ms
    assert options_from(parser.parse_args(["--linger-ms", "20"])).linger_ms == 20.0
    with pytest.raises(ValueError, match="--shards 4 --up-partitions 0: every topic needs at least one partition"):
        options_from(parser.parse_args(["--up-partitions", "0"]))


def test_kafka_setting_options() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from(parser.parse_args([])).kafka_settings == ()
    opts = options_from(parser.parse_args(["--kafka-setting", "transaction.partition.verification.enable=false",
                                           "--kafka-setting", "a.b=x=y"]))
    assert opts.kafka_settings == (("transaction.partition.verification.enable", "false"), ("a.b", "x=y"))
    with pytest.raises(ValueError, match=re.escape("--kafka-setting a.b: each is KEY=VALUE")):
        options_from(parser.parse_args(["--kafka-setting", "a.b"]))


def test_gateway_setting_options_are_dotted_paths_with_yaml_values() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert options_from(parser.parse_args([])).gateway_settings == ()
    opts = options_from(parser.parse_args(["--gateway-setting", "dedup.from_other_hubs=false",
                                           "--gateway-setting", "kafka.linger_ms=20", "--gateway-setting",
                                           "kafka.compression=zstd"]))
    assert opts.gateway_settings == (("dedup.from_other_hubs", False), ("kafka.linger_ms", 20),
                                     ("kafka.compression", "zstd"))
    for bad in ("kafka.linger_ms", "=3", "kafka..linger_ms=3"):
        with pytest.raises(BenchSettingError, match="dotted path"):
            options_from(parser.parse_args(["--gateway-setting", bad]))


def test_slowest_tasks_say_when_they_were_submitted() -> None:
    round_trips = [5.0] * 200
    round_trips[7], round_trips[150] = 900.0, 800.0  # 1% of 200: these two, submitted 10 ms apart from 1 s on
    sent = [2_000_000_000 + i * 10_000_000 for i in range(200)]
    tally = TaskTally(first_sent_ns=1_000_000_000,
                      done_at={f"t{i}": (at, at + int(ms * 1e6), at + int(ms * 1e6)) for i, (at, ms)
                               in enumerate(zip(sent, round_trips, strict=True))})
    assert tally.slowest_at_s() == [1.07, 2.5]
    assert TaskTally().slowest_at_s() == []


def test_worker_count_fills_workers_before_adding_one() -> None:
    assert [worker_count(n, 2) for n in (1, 10, ROBOTS_PER_WORKER, ROBOTS_PER_WORKER + 1, 1000)] == [1, 1, 1, 2, 2]
    assert worker_count(1000, 4) == 4
    assert worker_count(3, 0) == 1


def test_percentile_by_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 0.5) == 50
    assert percentile(values, 0.99) == 99
    assert percentile([], 0.99) == 0.0


@pytest.mark.parametrize("value", [0, 1, -1, 63, 64, -65, 1 << 32 | 7, 1_795_711_250_222_517_843])
def test_avro_long_round_trips_through_the_head_reader(value: int) -> None:
    body = avro_long(2) + b"r1" + avro_long(3) + b"imu" + avro_long(value) + avro_long(value + 1)
    head = read_head(body)
    assert (head.robot_id, head.stream, head.seq, head.stamp_ns) == ("r1", "imu", value, value + 1)


def test_the_head_is_read_in_place_after_the_framing_and_the_same_either_way() -> None:
    """The probe reads the head at byte 5 of a Confluent-framed value (no copy); short names go the one-pass way,
    a robot id of 64 bytes or more the field-by-field way, a cut-off record fails as before."""
    for robot_id in ("robot_00042", "r" * 70):
        body = (avro_long(len(robot_id)) + robot_id.encode() + avro_long(3) + b"imu" + avro_long(5 << 32 | 9)
                + avro_long(1_795_711_250_222_517_843) + avro_long(4) + b"type")
        framed = b"\x00\x00\x00\x00\x07" + body
        assert read_head(framed, 5) == read_head(body) == (robot_id, "imu", 5 << 32 | 9, 1_795_711_250_222_517_843)
        with pytest.raises(RecordError):
            read_head(framed[:len(robot_id) + 9], 5)  # cut inside the seq


@pytest.mark.parametrize("spec", DEFAULT_MIX[:3], ids=lambda s: s.name)
def test_template_record_is_the_robot_bridge_record(spec: object) -> None:
    robot = SimRobot("robot_00042", "bench", [spec])  # type: ignore[list-item]
    template = StreamTemplate(spec, robot.robot_id, robot.topic(spec))  # type: ignore[arg-type]
    seq = robot.seq(0)
    assert template.record(seq, 1) == robot.record(spec)  # type: ignore[arg-type]  # SimRobot stamps n + 1


def _step(**changes: object) -> StepFigures:
    base: dict[str, object] = dict(
                robots=10, target_msgs_per_s=720.0, offered_msgs_per_s=719.0, delivered_msgs_per_s=719.0, sent=7200,
                delivered=7200, lost=0, duplicates=0, unexpected=0, p50_ms=3.0, p99_ms=20.0, consumer_p99_ms=25.0,
                max_ms=40.0, tasks_submitted=5, tasks_done=5, tasks_other_end=0, task_p50_ms=30.0, task_p99_ms=60.0,
                sim_max_lag_ms=2.0, connect_s=1.0)
    base.update(changes)
    return StepFigures(**base)  # type: ignore[arg-type]


def test_verdicts_and_headline() -> None:
    good, lossy, slow, starved = _step(), _step(robots=100, lost=1), _step(robots=300, p99_ms=51.0), _step(
        robots=1000, target_msgs_per_s=72_000.0, offered_msgs_per_s=30_000.0)
    assert holds(good) and not holds(lossy) and not holds(slow) and not holds(starved)
    assert headline([good, lossy, slow, starved]) == 10
    assert headline([lossy]) == 0
    assert not fails_badly(slow)
    assert fails_badly(_step(lost=100))
    assert fails_badly(_step(delivered_msgs_per_s=300.0))


def test_task_round_trip_goal_is_judged_on_its_fleet_and_rate() -> None:
    tasks = {"robots": 100, "task_rate_per_s": 200.0, "tasks_submitted": 3789, "tasks_done": 3789}
    assert task_goal([_step()]) is None  # no step at 100 robots and 200 tasks/s
    assert task_goal([_step(robots=100, task_rate_per_s=5.0)]) is None
    met = task_goal([_step(), _step(**tasks, task_p99_ms=92.5)])
    assert met == {"robots": 100, "task_rate_per_s": 200.0, "p99_ms": 100.0, "tasks": 3789, "done": 3789,
                   "task_p99_ms": 92.5, "met": True}
    assert not task_goal([_step(**tasks, task_p99_ms=100.1)])["met"]  # type: ignore[index]
    assert not task_goal([_step(**{**tasks, "tasks_done": 3788}, task_p99_ms=50.0)])["met"]  # type: ignore[index]
    assert not task_goal([_step(**{**tasks, "tasks_submitted": 0, "tasks_done": 0}, task_p99_ms=0.0)])["met"]  # type: ignore[index]
    figures = {"mix_hz": {"imu": 50.0}, "cores": 2, "duration_s": 20.0, "workers": 1, "headline_robots": 100,
               "goal_robots": 300, "goal_met": False, "steps": [], "task_goal": met}
    assert ("**The task round trip at 100 robots, 200 tasks/s: p99 92.5 ms over 3,789 tasks of a 20 s step, 3,789 "
            "done; goal <= 100 ms, every task done: met.**") in markdown(figures)


def test_bucket_quantile_reads_the_window_between_scrapes() -> None:
    before = {0.001: 10.0, 0.01: 10.0, 0.1: 10.0, float("inf"): 10.0}
    after = {0.001: 10.0, 0.01: 60.0, 0.1: 109.0, float("inf"): 110.0}  # 100 new: 50 <= 10 ms, 49 <= 100 ms, 1 more
    assert bucket_quantile(before, after, 0.5) == 0.01
    assert bucket_quantile(before, after, 0.99) == 0.1
    assert bucket_quantile(after, after, 0.5) == 0.0


def test_p99_by_second_shows_a_stall_at_the_start() -> None:
    latencies = [900.0] * 10 + [5.0] * 190 + [7.0] * 50
    assert p99_by_second(latencies, 100.0) == [900.0, 5.0, 7.0]
    assert p99_by_second([], 100.0) == []


def test_hub_cost_per_record_and_per_core() -> None:
    cpu = {"gateway": 60.0, "mosquitto": 20.0, "kafka": 40.0, "simulator": 30.0, "bench probe": 10.0}
    per, hub, per_core = hub_cost(cpu, 20_000.0)
    assert per == {"gateway": 30.0, "mosquitto": 10.0, "kafka": 20.0, "simulator": 15.0, "bench probe": 5.0}
    assert hub == 60.0  # the hub is gateway + Mosquitto + Kafka: the simulator and the probe are harness
    assert per_core == 16_667
    assert hub_cost(cpu, 0.0) == ({}, 0.0, 0.0)
    assert round(EMQX_MSGS_PER_CORE) == 4112
    step = _step(robots=300, delivered_msgs_per_s=20_000.0, cpu_percent=cpu)
    step.us_per_record, step.hub_us_per_record, step.hub_records_per_core = per, hub, per_core
    text = markdown({"mix_hz": {"imu": 50.0}, "cores": 2, "duration_s": 5.0, "workers": 1, "headline_robots": 0,
                     "goal_robots": 300, "goal_met": False, "steps": [step.as_dict()]})
    assert "| 300 | 20,000 | 30 | 10 | 20 | 60 | 16,667 | 4.1x |" in text


def test_report_lists_every_step() -> None:
    figures = {"mix_hz": {"imu": 50.0}, "cores": 2, "duration_s": 5.0, "workers": 1, "headline_robots": 10,
               "goal_robots": 300, "goal_met": False, "steps": [_step().as_dict(), _step(robots=100, lost=3).as_dict()]}
    text = markdown(figures)
    assert "**Headline: 10 robots held**" in text
    assert "| 100 | 720 |" in text and "| 3 |" in text
    assert "No warm-up" in text
    assert sim_us_per_msg(_step(offered_msgs_per_s=3600.0, cpu_percent={"simulator": 36.0})) == 100.0
    assert sim_us_per_msg(_step(offered_msgs_per_s=0.0, cpu_percent={"simulator": 36.0})) == 0.0
    figures["warmup"] = {"ran": True, "seconds": 20.0, "robots": 30, "run": 1,
                         "figures": _step(robots=30, p99_ms=116.0, cpu_percent={"kafka": 110.0}).as_dict()}
    text = markdown(figures)
    assert "Warm-up before the steps (not a step, not judged): 30 robots for 20 s" in text
    assert "p99 116.0 ms" in text and "kafka 110%" in text
    assert "rounds" not in text
    figures["warmup"] = {**figures["warmup"], "seconds": 60.0, "rounds": 3,  # type: ignore[dict-item]
                         "kafka_jit_percent": [31.0, 14.0, 8.0]}
    text = markdown(figures)
    assert "30 robots for 60 s through the whole hub, tasks included, in 3 rounds (Kafka's JIT compiling per " \
           "round: 31%, 14%, 8% of a core; it goes on while that is 10% or more)" in text


def _exported_names() -> set[str]:
    """Every sample name the robot bridge, gateway and coordinator registries expose."""
    from swarm_bridge.coordinator.metrics import CoordinatorMetrics
    from swarm_bridge.gateway.metrics import GatewayMetrics
    from swarm_bridge.metrics import BridgeMetrics

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {family.name + suffix for metrics in (BridgeMetrics(), GatewayMetrics(), CoordinatorMetrics())
            for family in metrics.registry.collect() for suffix in suffixes.get(family.type, ("",))}


def test_dashboard_and_docs_name_only_exported_metrics() -> None:
    repo = Path(__file__).resolve().parents[3]
    exported = _exported_names()
    dashboard = json.loads((repo / "docker/grafana/swarm_bridge.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"swarm_[a-z_]+", target["expr"])}
    documented = set(re.findall(r"`(swarm_[a-z_]+)`", (repo / "docs/fleet-scale.md").read_text()))
    assert used and used <= exported, sorted(used - exported)
    histograms = {n.removesuffix("_bucket") for n in exported if n.endswith("_bucket")}
    assert documented and documented <= exported | histograms, sorted(documented - exported - histograms)
    families = {n.removesuffix("_total").removesuffix("_bucket") for n in used}
    assert {"swarm_gateway_records_produced", "swarm_coordinator_tasks", "swarm_bridge_route_records"} <= families


def test_the_slowest_tasks_legs_show_the_leg_that_held_them() -> None:
    from swarm_bridge.fleetbench.task_legs import LEGS, TaskTimes, slowest_legs

    ms = 1_000_000
    tasks = {f"t{i}": TaskTimes(submitted_ns=0, stamped_ns=10 * ms, received_ns=15 * ms, done_ns=25 * ms,
                                seen_ns=30 * ms) for i in range(99)}
    at = 1_796_650_000_123_456_789  # when it was submitted, to set beside other logs (GC, broker)
    tasks["slow"] = TaskTimes(submitted_ns=at, stamped_ns=at + 10 * ms, received_ns=at + 115 * ms,
                              done_ns=at + 125 * ms, seen_ns=at + 130 * ms)  # held 100 ms between coordinator and robot
    tasks["unheard"] = TaskTimes(submitted_ns=0, done_ns=500 * ms, seen_ns=501 * ms)  # its command not reported
    legs = slowest_legs(tasks)
    assert (legs["tasks"], legs["cut"], legs["slowest_count"]) == (101, 100, 1)
    assert legs["all_median_ms"] == {LEGS[0][0]: 10.0, LEGS[1][0]: 5.0, LEGS[2][0]: 10.0, LEGS[3][0]: 5.0}
    assert legs["slowest_median_ms"][LEGS[1][0]] == 105.0
    assert legs["slowest"][0]["task_id"] == "slow" and legs["slowest"][0]["round_trip_ms"] == 125.0
    assert legs["slowest"][0]["submitted_s"] == 1_796_650_000.123
    assert slowest_legs({}) == {"tasks": 0, "cut": 0, "all_median_ms": {}, "slowest_median_ms": {},
                                "slowest_count": 0, "slowest": []}
