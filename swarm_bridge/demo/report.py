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
        lines += _render_progress(report["task_progress"], report.get("task_executor", "reference"),
                                  vda="vda5050" in report)
    if report.get("vda5050"):
        lines += _render_vda(report["vda5050"])
    lines.append("")
    lines.append("every replayed message was delivered once" if report["all_delivered"]
                 else "SOME MESSAGES WERE NOT DELIVERED (see missing)")
    return "\n".join(lines)


def _render_progress(traces: Sequence[Mapping[str, Any]], executor: str, shown: int = 12, *,
                     vda: bool = False) -> list[str]:
    """Each task's robot, end and the progress steps the coordinator saw (the first `shown`; then a count)."""
    how = "through ROS 2 actions" if executor == "actions" else "by the reference task executors"
    if vda:
        how += " and as VDA 5050 orders"
        shown = max(shown, len(traces))  # a small mixed fleet: every task, so each vehicle's orders show
    width = max([10, *(len(t["robot_id"] or "-") for t in traces)])
    lines = [f"task progress, {how} (as the coordinator saw it):"]
    for trace in traces[:shown]:
        steps = " ".join(f"{p:.2f}" for p in trace["progress"])
        lines.append(f"  {trace['task_id']:<16} {trace['robot_id'] or '-':<{width}} {trace['state']:<9} {steps}")
    if len(traces) > shown:
        moving = sum(any(0 < p < 1 for p in t["progress"]) for t in traces)
        lines.append(f"  ... and {len(traces) - shown} more; {moving} of {len(traces)} tasks reported progress "
                     "between 0 and 1")
    return lines


# The columns of the VDA 5050 table: topic -> its heading (who sends it: the vehicle, or the master control).
VDA_COLUMNS = (("order", "order"), ("instantActions", "instant"), ("state", "state"), ("connection", "conn"),
               ("factsheet", "facts"), ("visualization", "visu"))


def _render_vda(vda: Mapping[str, Any]) -> list[str]:
    """The VDA 5050 vehicles: how each is simulated, its connection, orders and tasks, its messages per topic; the
    totals, and whether every message kept to the official schemas."""
    width = max(14, *(len(v["robot_id"]) for v in vda["vehicles"]))
    head = (f"  {'vehicle':<{width}} {'kind':<5} {'connection':<11} {'orders':>6} {'tasks':<12} "
            + " ".join(f"{title:>7}" for _name, title in VDA_COLUMNS) + "  simulated as")
    lines = ["", f"VDA 5050 vehicles on {vda['interface']}/..., driven by the coordinator as master control:", head]
    for v in vda["vehicles"]:
        tasks = ", ".join(f"{state} {n}" for state, n in v["tasks"].items()) or "-"
        lines.append(f"  {v['robot_id']:<{width}} {v['kind']:<5} {v['connection']:<11} {v['orders']:>6} {tasks:<12} "
                     + " ".join(f"{v['messages'][name]:>7}" for name, _title in VDA_COLUMNS)
                     + f"  {v['simulated_as']}")
    total = vda["messages"]
    lines.append("VDA 5050 messages: " + ", ".join(f"{name} {total[name]}" for name, _title in VDA_COLUMNS)
                 + (f"; from vehicles not in the demo: {sum(vda['other_vehicles'].values())}"
                    if vda["other_vehicles"] else ""))
    for pause in vda.get("pauses", ()):
        lines.append(f"{pause['robot_id']} paused (startPause) during {pause['task_id']} and resumed (stopPause) "
                     f"{pause['paused_s']:g} s later" if "robot_id" in pause else f"pause failed: {pause['failed']}")
    if vda["schemas"] is None:
        lines.append("not checked against the official JSON Schemas (none found: give --vda5050-schemas)")
    elif not vda["invalid"]:
        lines.append(f"every VDA 5050 message kept to the official JSON Schemas ({vda['schemas']})")
    else:
        lines.append(f"{vda['invalid']} VDA 5050 MESSAGES BREAK THE OFFICIAL JSON SCHEMAS, e.g.:")
        lines += [f"  {problem}" for problem in vda["problems"]]
    return lines


def plot(streams: Iterable[Stream], path: Path, *, bin_s: float = 1.0,
         vda_arrivals: Mapping[str, Sequence[int]] | None = None) -> Path:
    """A PNG of delivered records per second and latency p50/p99 per `bin_s` over the run; with `vda_arrivals`
    (VDA 5050 topic -> arrival ns of each message) a third panel of VDA 5050 messages per second by topic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = sorted(sample for s in streams for sample in s.samples)
    firsts = ([pairs[0][0]] if pairs else []) + [min(t) for t in (vda_arrivals or {}).values() if t]
    start = min(firsts, default=0)  # the streams' and the VDA 5050 panels share the time axis
    bins: dict[int, list[float]] = {}
    for arrived, latency in pairs:
        bins.setdefault(int((arrived - start) / 1e9 / bin_s), []).append(latency / 1e6)
    xs = sorted(bins)
    panels = 3 if vda_arrivals else 2
    fig, axes = plt.subplots(panels, 1, figsize=(9, 3 * panels), sharex=True)
    top, bottom = axes[0], axes[1]
    top.plot([x * bin_s for x in xs], [len(bins[x]) / bin_s for x in xs], color="tab:blue")
    top.set_ylabel("delivered records/s")
    top.set_title("swarm_bridge fleet demo: bags -> robot bridges -> MQTT")
    bottom.plot([x * bin_s for x in xs], [percentile(bins[x], 50) for x in xs], label="p50")
    bottom.plot([x * bin_s for x in xs], [percentile(bins[x], 99) for x in xs], label="p99")
    bottom.set_ylabel("latency (ms)")
    bottom.legend()
    if vda_arrivals:
        _plot_vda(axes[2], vda_arrivals, start, bin_s)
    axes[-1].set_xlabel("seconds since the first delivery" + (" or VDA 5050 message" if vda_arrivals else ""))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _plot_vda(axis: Any, arrivals: Mapping[str, Sequence[int]], start: int, bin_s: float) -> None:
    """VDA 5050 messages per `bin_s`, stacked by topic, on the time axis of the streams' panels."""
    every = [t for times in arrivals.values() for t in times]
    if not every:
        return
    first, last = (int((t - start) / 1e9 / bin_s) for t in (min(every), max(every)))
    xs = list(range(first, last + 1))  # every bin, empty ones as 0
    below = [0.0] * len(xs)
    for name, times in sorted(arrivals.items()):  # stacked: the bar's height is every message of that second
        counts = dict.fromkeys(xs, 0)
        for arrived in times:
            counts[int((arrived - start) / 1e9 / bin_s)] += 1
        heights = [counts[x] / bin_s for x in xs]
        axis.bar([x * bin_s for x in xs], heights, width=bin_s, bottom=below, align="edge", label=name)
        below = [b + h for b, h in zip(below, heights, strict=True)]
    axis.set_ylabel("VDA 5050 msgs/s")
    axis.legend(fontsize="small", ncol=3)
