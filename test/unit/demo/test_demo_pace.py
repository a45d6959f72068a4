"""The demo's pace: the bags' offered peak, the default rate picked from it and the cores, the records in flight,
the verdict against the 1 s goal, and how the report shows them."""

from __future__ import annotations

import math

import pytest

from swarm_bridge.demo.pace import (
    GOAL_MS,
    MSGS_PER_CORE,
    RATES,
    RateChoice,
    in_flight_peak,
    machine_cores,
    offered_peak,
    pick_rate,
    verdict,
)
from swarm_bridge.demo.report import fleet_report, pace_report, render

# 32 s of a sparse bag at 8 msgs/s, and a dense one: 400 messages between 10.0 and 11.0 s (binary fractions: exact)
SPARSE = [i / 8 for i in range(256)]
DENSE = [10.0 + i / 512 for i in range(400)]
BAGS = sorted(SPARSE + DENSE)


def test_offered_peak_counts_the_busiest_window_at_the_rate() -> None:
    assert offered_peak([]) == 0
    assert offered_peak([0.0, 0.5, 0.99, 1.0, 1.5]) == 3  # a window is [t, t + 1 s)
    assert offered_peak(BAGS) == 400 + 8  # the dense second and the sparse bag's 8
    assert offered_peak(BAGS, rate=2) == 400 + 16  # 2 s of the bags in each second of the replay
    assert offered_peak(SPARSE, rate=8) == 64


def test_the_default_rate_is_the_fastest_whose_peak_fits_the_cores() -> None:
    peak_at = {rate: offered_peak(BAGS, rate=rate) for rate in RATES}
    assert peak_at[10] > peak_at[5] > peak_at[2] > peak_at[1]
    budget = 2 * MSGS_PER_CORE
    fitting = max(rate for rate in RATES if peak_at[rate] <= budget)
    choice = pick_rate(BAGS, cores=2)
    assert (choice.rate, choice.peak_per_s, choice.budget_per_s, choice.fits, choice.picked) == (
        fitting, peak_at[fitting], budget, True, True)
    assert pick_rate(BAGS, cores=64).rate == max(RATES)  # a big machine replays at the fastest


def test_bags_too_dense_for_the_machine_get_the_slowest_rate_and_say_so() -> None:
    burst = [i / 10_000 for i in range(10_000)]  # 10,000 messages in one second of the bag
    choice = pick_rate(burst, cores=1)
    assert choice.rate == min(RATES) and not choice.fits
    assert "OVER" in choice.describe() and f"{choice.peak_per_s:,} msgs/s" in choice.describe()
    assert "--rate" in RateChoice(3.0, 10, 2500, picked=False).describe()


def test_in_flight_peak_is_the_deepest_queue_between_publish_and_arrival() -> None:
    assert in_flight_peak([], []) == 0
    assert in_flight_peak([1, 2, 3], [4, 5, 6]) == 3  # all three out before the first arrives
    assert in_flight_peak([1, 3, 5], [2, 4, 6]) == 1  # each arrives before the next is published
    assert in_flight_peak([1, 2], [2, 3]) == 1  # an arrival at a publish's nanosecond counts first


def test_the_verdict_names_what_missed_the_goal() -> None:
    assert verdict(GOAL_MS, 0.0) == "held"
    assert verdict(2500.0, 3.0) == "behind: p99 ROS publish -> broker 2.5 s"
    assert verdict(400.0, 6100.0) == "behind: the replay published 6.1 s behind its schedule (p99)"
    assert verdict(math.nan, 0.0) == "no records delivered"


def test_machine_cores_is_at_least_one() -> None:
    assert machine_cores() >= 1


@pytest.mark.parametrize(("load", "busy"), [((0.4, 1.1), False), ((24.5, 29.6), True)])
def test_the_report_shows_the_pace_and_the_verdict(load: tuple[float, float], busy: bool) -> None:
    choice = pick_rate(BAGS, cores=2)
    pace = pace_report(choice, lag_ns=[1_000_000, 3_000_000], published_ns=[1, 2, 3], arrived_ns=[4, 5, 6],
                       latency_p99_ms=120.0, cores=2, load=load)
    assert pace["in_flight_peak"] == 3 and pace["replay_lag_p99_ms"] == 3.0 and pace["verdict"] == "held"
    assert pace["offered_peak_per_s"] == choice.peak_per_s and pace["rate"] == choice.rate
    report = fleet_report([], replay_s=1.0, skipped={}, extra={"pace": pace})
    text = render(report)
    assert f"the bags offered at most {choice.peak_per_s:,} msgs/s" in text
    assert "records in flight (published, not yet delivered) peaked at 3" in text
    assert "p99 <= 1 s: held" in text
    assert ("busy: other work shares the cores" in text) is busy
