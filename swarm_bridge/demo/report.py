"""The fleet demo's report: per stream counts (bag, published, delivered), throughput, latency, tasks; text,
JSON and a PNG plot of throughput and latency over time."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from swarm_bridge.demo.pace import GOAL_MS, RateChoice, in_flight_peak, verdict

__all__ = ["fleet_report", "pace_report", "percentile", "plot", "render"]


class Stream(Protocol):
    """What the report reads of one stream (demo.fleet.StreamTally)."""

    robot_id: str
    bag_topic: str
    ros_type: str
    stream: str
    in_bag: int
    published: int
    arrived: set[int]
    duplicates: int
    undecodable: int
    content_mismatch: int
    latency_ns: list[int]
    arrival_ns: list[int]
    samples: list[tuple[int, int]]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of `values` by nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return float(ordered[rank])


def _ms(ns: float) -> float:
    return round(ns / 1e6, 3)


def fleet_report(streams: Iterable[Stream], *, replay_s: float, skipped: Mapping[str, Any],
                 tasks: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The figures: one row per robot stream, per bag topic totals (read vs delivered), fleet totals."""
    rows: list[dict[str, Any]] = []
    latencies: list[int] = []
    arrivals: list[int] = []
    by_topic: dict[str, dict[str, int]] = {}
    for s in streams:
        latencies += s.latency_ns
        arrivals += s.arrival_ns
        rows.append({
            "robot_id": s.robot_id, "bag_topic": s.bag_topic, "ros_type": s.ros_type, "stream": s.stream,
            "in_bag": s.in_bag, "published": s.published, "delivered": len(s.arrived), "duplicates": s.duplicates,
            "undecodable": s.undecodable, "missing": max(0, s.published - len(s.arrived)),
            "content_mismatch": s.content_mismatch,
            "latency_p50_ms": _ms(percentile(s.latency_ns, 50)), "latency_p99_ms": _ms(percentile(s.latency_ns, 99)),
        })
        topic = by_topic.setdefault(s.bag_topic, {"read": 0, "published": 0, "delivered": 0})
        topic["read"] += s.in_bag
        topic["published"] += s.published
        topic["delivered"] += len(s.arrived)
    span_s = (max(arrivals) - min(arrivals)) / 1e9 if len(arrivals) > 1 else 0.0
    delivered = sum(r["delivered"] for r in rows)
    return {
        "streams": rows,
        "topics": by_topic,
        "skipped": dict(skipped),
        "totals": {
            "in_bags": sum(r["in_bag"] for r in rows), "published": sum(r["published"] for r in rows),
            "delivered": delivered, "duplicates": sum(r["duplicates"] for r in rows),
            "missing": sum(r["missing"] for r in rows), "undecodable": sum(r["undecodable"] for r in rows),
            "content_mismatch": sum(r["content_mismatch"] for r in rows),
            "replay_s": round(replay_s, 2), "delivery_span_s": round(span_s, 2),
            "throughput_per_s": round(delivered / span_s, 1) if span_s else 0.0,
            "latency_p50_ms": _ms(percentile(latencies, 50)), "latency_p90_ms": _ms(percentile(latencies, 90)),
            "latency_p99_ms": _ms(percentile(latencies, 99)), "latency_max_ms": _ms(max(latencies, default=0)),
        },
        "tasks": dict(tasks or {}),
        **dict(extra or {}),
        "all_delivered": all(r["delivered"] == r["published"] == r["in_bag"] and not r["duplicates"]
                             and not r["content_mismatch"] for r in rows),
    }


def pace_report(choice: RateChoice, *, lag_ns: Sequence[int], published_ns: Iterable[int],
                arrived_ns: Iterable[int], latency_p99_ms: float, cores: int,
                load: tuple[float, float]) -> dict[str, Any]:
    """Whether the machine kept up: the rate and the peak it offers against the machine's budget, how late the
    replay published against its schedule, the most records in flight, the load, and the verdict against GOAL_MS."""
    lag_p99_ms = _ms(percentile(lag_ns, 99))
    return {
        "rate": choice.rate, "rate_picked": choice.picked, "offered_peak_per_s": choice.peak_per_s,
        "budget_per_s": choice.budget_per_s, "cores": cores,
        "replay_lag_p50_ms": _ms(percentile(lag_ns, 50)), "replay_lag_p99_ms": lag_p99_ms,
        "replay_lag_max_ms": _ms(max(lag_ns, default=0)),
        "in_flight_peak": in_flight_peak(published_ns, arrived_ns),
        "load_average": {"start": round(load[0], 1), "end": round(load[1], 1)},
        "goal_p99_ms": GOAL_MS, "verdict": verdict(latency_p99_ms, lag_p99_ms),
    }


def _render_pace(pace: Mapping[str, Any]) -> list[str]:
    """The pace section: offered peak vs budget, replay lag, queue, load, verdict."""
    how = "picked from the bags' peak and the cores" if pace["rate_picked"] else "given by --rate"
    load = pace["load_average"]
    busy = " (busy: other work shares the cores)" if max(load["start"], load["end"]) > pace["cores"] else ""
    return [f"rate x{pace['rate']:g} ({how}): the bags offered at most {pace['offered_peak_per_s']:,} msgs/s; "
            f"{pace['cores']} cores are expected to hold {pace['budget_per_s']:,} msgs/s",
            f"replay behind its schedule: p50 {pace['replay_lag_p50_ms']} ms, p99 {pace['replay_lag_p99_ms']} ms, "
            f"max {pace['replay_lag_max_ms']} ms; records in flight (published, not yet delivered) peaked at "
            f"{pace['in_flight_peak']:,}",
            f"load average {load['start']:g} at the start, {load['end']:g} at the end, on {pace['cores']} cores{busy}",
            f"p99 <= {pace['goal_p99_ms'] / 1000:g} s: {pace['verdict']}"]


def render(report: Mapping[str, Any]) -> str:
    """The report as text for a terminal: a table of streams, skipped topics, totals, tasks, the verdict."""
    head = (f"{'robot':<10} {'bag topic':<34} {'type':<38} {'bag':>6} {'pub':>6} {'deliv':>6} {'dup':>4} "
            f"{'p50 ms':>8} {'p99 ms':>8}")
    lines = ["", head, "-" * len(head)]
    for r in report["streams"]:
        lines.append(f"{r['robot_id']:<10} {r['bag_topic'][:34]:<34} {r['ros_type'][:38]:<38} {r['in_bag']:>6} "
                     f"{r['published']:>6} {r['delivered']:>6} {r['duplicates']:>4} {r['latency_p50_ms']:>8.1f} "
                     f"{r['latency_p99_ms']:>8.1f}")
    if report.get("renamed"):
        lines += ["", "bag topics renamed to valid ROS 2 names (rule: docs/replay.md, topic names):"]
        lines += [f"  {recorded} -> {name}" for recorded, name in sorted(report["renamed"].items())]
    if report.get("converted"):
        lines += ["", "bag topics converted to the installed message definitions:"]
        lines += [f"  {topic}: {note}" for topic, note in sorted(report["converted"].items())]
    if report["skipped"]:
        lines += ["", "not replayed (counted, with the reason):"]
        for topic, entry in sorted(report["skipped"].items()):
            lines.append(f"  {topic} ({entry['ros_type']}): {entry['skipped']} - "
                         f"{'; '.join(sorted(entry['reasons']))}")
    t = report["totals"]
    lines += ["", f"messages in the bags {t['in_bags']}, published on ROS {t['published']}, delivered "
                  f"{t['delivered']} (duplicates {t['duplicates']}, missing {t['missing']}, undecodable "
                  f"{t['undecodable']}, content different from the bag {t['content_mismatch']})",
              f"replay {t['replay_s']} s; delivered {t['throughput_per_s']} records/s over {t['delivery_span_s']} s",
              f"latency ROS publish -> {report.get('delivered_at', 'broker')}: p50 {t['latency_p50_ms']} ms, "
              f"p90 {t['latency_p90_ms']} ms, p99 {t['latency_p99_ms']} ms, max {t['latency_max_ms']} ms"]
    if report.get("pace"):
        lines += _render_pace(report["pace"])
    if report.get("restarts"):
        lines.append("restarted after exiting: " + ", ".join(f"{name} x{n}" for name, n in report["restarts"].items()))
    if report["tasks"]:
        tasks = report["tasks"]
        lines.append("tasks: " + ", ".join(f"{key} {value}" for key, value in tasks.items()))
    if report.get("task_progress"):
        lines += _render_progress(report["task_progress"], report.get("task_executor", "reference"))
    lines.append("")
    lines.append("every replayed message was delivered once" if report["all_delivered"]
                 else "SOME MESSAGES WERE NOT DELIVERED (see missing)")
    return "\n".join(lines)


def _render_progress(traces: Sequence[Mapping[str, Any]], executor: str, shown: int = 12) -> list[str]:
    """Each task's robot, end and the progress steps the coordinator saw (the first `shown`; then a count)."""
    how = "through ROS 2 actions" if executor == "actions" else "by the reference task executors"
    lines = [f"task progress, {how} (as the coordinator saw it):"]
    for trace in traces[:shown]:
        steps = " ".join(f"{p:.2f}" for p in trace["progress"])
        lines.append(f"  {trace['task_id']:<16} {trace['robot_id'] or '-':<10} {trace['state']:<9} {steps}")
    if len(traces) > shown:
        moving = sum(any(0 < p < 1 for p in t["progress"]) for t in traces)
        lines.append(f"  ... and {len(traces) - shown} more; {moving} of {len(traces)} tasks reported progress "
                     "between 0 and 1")
    return lines


def plot(streams: Iterable[Stream], path: Path, *, bin_s: float = 1.0) -> Path:
    """A PNG of delivered records per second and latency p50/p99 per `bin_s` over the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = sorted(sample for s in streams for sample in s.samples)
    start = pairs[0][0] if pairs else 0
    bins: dict[int, list[float]] = {}
    for arrived, latency in pairs:
        bins.setdefault(int((arrived - start) / 1e9 / bin_s), []).append(latency / 1e6)
    xs = sorted(bins)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot([x * bin_s for x in xs], [len(bins[x]) / bin_s for x in xs], color="tab:blue")
    top.set_ylabel("delivered records/s")
    top.set_title("swarm_bridge fleet demo: bags -> robot bridges -> MQTT")
    bottom.plot([x * bin_s for x in xs], [percentile(bins[x], 50) for x in xs], label="p50")
    bottom.plot([x * bin_s for x in xs], [percentile(bins[x], 99) for x in xs], label="p99")
    bottom.set_ylabel("latency (ms)")
    bottom.set_xlabel("seconds since the first delivery")
    bottom.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
