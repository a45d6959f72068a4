"""`swarm-bridge demo`: the whole fleet from real bags, on an embedded default, ending with a report and a plot."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from swarm_bridge.cli.errors import UsageError
from swarm_bridge.cli.web import add_web_options, web_settings

if TYPE_CHECKING:
    from swarm_bridge.demo.pace import RateChoice

__all__ = ["choose_rate", "default_bags", "default_vda5050_schemas", "mqtt_endpoint", "register"]

BAGS_ENV = "SWARM_BRIDGE_BAGS"
VDA5050_ENV = "SWARM_BRIDGE_VDA5050"


def default_bags() -> Path:
    """$SWARM_BRIDGE_BAGS, else the shared bags beside the repository (`../shared/data/bags`)."""
    value = os.environ.get(BAGS_ENV)
    if value:
        return Path(value)
    repo = Path(__file__).resolve().parents[2]
    return repo.parent / "shared" / "data" / "bags"


def default_vda5050_schemas() -> Path:
    """json_schemas/ of $SWARM_BRIDGE_VDA5050 (the folder of the VDA 5050 2.1 release), else of the shared
    `../shared/data/vda5050` beside the repository (as the tests read them)."""
    value = os.environ.get(VDA5050_ENV)
    folder = Path(value) if value else Path(__file__).resolve().parents[2].parent / "shared" / "data" / "vda5050"
    return folder / "json_schemas"


def register(sub: Any) -> None:
    """Add the `demo` command."""
    parser = sub.add_parser(
        "demo",
        help="run the fleet from real bags: replay -> robot bridges -> MQTT, tasks back down, and a report",
        description=(
            "Every bag under --bags is replayed as a robot of its own (or dealt to --robots robots) on its recorded "
            "clock scaled by --rate; each robot has a robot_bridge process bridging every replayed topic to MQTT "
            "as Avro, and a reference task executor (or, with --tasks actions, a simulated navigator its bridge "
            "drives through a ROS 2 action). A tap on the broker counts every stream against the bag, and "
            "the report gives counts, throughput and latency, and a PNG plot. Without --mqtt the demo starts a "
            "private Mosquitto; the schema registry is an embedded file registry."
        ),
    )
    parser.add_argument("--bags", type=Path, default=None,
                        help=f"folder of bags (default ${BAGS_ENV}, else ../shared/data/bags beside the repository)")
    parser.add_argument("--robots", type=int, default=None, help="robots in the fleet (default: one per bag)")
    parser.add_argument("--rate", default="auto",
                        help="replay speed: the bags' clock times this; default auto: the fastest of x10, x5, x2, x1 "
                        "at which the bags' peak of messages/s fits what this machine's cores are expected to hold")
    parser.add_argument("--mqtt", metavar="URL", help="use this MQTT broker (mqtt://host:port), not a private one")
    parser.add_argument("--kafka", metavar="BOOTSTRAP",
                        help="also run an edge gateway to this Kafka (host:port) and count what reaches Kafka")
    parser.add_argument("--tasks", default=None, metavar="N|actions[:N]|vda5050[:N]",
                        help="tasks for the coordinator to assign to the fleet (default: 2 per robot, and per VDA "
                        "5050 vehicle); actions: "
                        "the robots' bridges carry them out through a ROS 2 action (NavigateToPose, served by a "
                        "simulated navigator) and the report shows each task's progress; vda5050: VDA 5050 "
                        "vehicles join the fleet (a ROS robot behind its bridge's VDA 5050 profile, two plain "
                        "simulated AGVs), driven by the coordinator as master control, and the report shows them, "
                        "their tasks and their VDA 5050 messages")
    parser.add_argument("--vda5050-schemas", type=Path, default=None, metavar="DIR",
                        help="with --tasks vda5050: the official VDA 5050 JSON Schemas (json_schemas/ of the 2.1 "
                        f"release) every VDA 5050 message is checked against (default ${VDA5050_ENV}/json_schemas, "
                        "else ../shared/data/vda5050/json_schemas beside the repository; none there: not checked)")
    parser.add_argument("--report-json", type=Path, help="write the report's figures as JSON here")
    parser.add_argument("--plot", type=Path, default=Path("fleet_demo.png"),
                        help="PNG of throughput and latency over time (default ./fleet_demo.png)")
    parser.add_argument("--bag-distro", default="auto", metavar="DISTRO",
                        help="the ROS 2 distribution whose definitions rosbag2 bags without their own were recorded "
                        "with (humble, jazzy, ...); default auto: what each bag says, else humble")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: pid-based)")
    parser.add_argument("--run-dir", type=Path, default=None, help="broker logs, spools, bridge logs (default: temp)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for delivery after the replay")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_web_options(parser, port_flag="--web", default_port=None)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Start what is missing, run the fleet, print the report; 0 when every replayed message was delivered."""
    from swarm_bridge.brokers import BrokerError, Mosquitto, free_port
    from swarm_bridge.demo import ros_context
    from swarm_bridge.demo.dds import use_profile
    from swarm_bridge.demo.fleet import DemoError, FleetDemo
    from swarm_bridge.demo.pace import machine_cores
    from swarm_bridge.demo.plan import fleet_of, task_plan
    from swarm_bridge.demo.report import fleet_report, pace_report, plot, render
    from swarm_bridge.fleetweb import FleetWeb, FleetWebError, FleetWebSettingError
    from swarm_bridge.replay import ReplayError, ReplayTypes, find_bags
    from swarm_bridge.transport import LinkError

    bags_dir = args.bags or default_bags()
    try:
        rate = _rate(args.rate)
        bags = sorted(find_bags(bags_dir)) if bags_dir.is_dir() else []
        if not bags:
            raise UsageError(f"--bags {bags_dir}", "no bags found there",
                             f"pass --bags DIR (a folder of .bag, .mcap or rosbag2 folders) or set {BAGS_ENV}")
        fleet = fleet_of(bags, args.robots)
        plan = task_plan(args.tasks)
        mqtt_host, mqtt_port = mqtt_endpoint(args.mqtt)
        types = ReplayTypes(bag_distro=args.bag_distro)
        web = None if args.web is None else web_settings(args, args.web)
        vda_schemas = _vda_schemas(args.vda5050_schemas) if plan.vehicles else None
    except (ValueError, ReplayError, FleetWebSettingError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    domain_id = args.domain_id if args.domain_id is not None else 1 + os.getpid() % 100
    with ExitStack() as stack:
        run_dir = args.run_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="swarm-demo-")))
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            if args.mqtt is None:
                broker = Mosquitto(run_dir=run_dir / "mosquitto", port=free_port())
                print("demo: starting a private Mosquitto ...", flush=True)
                broker.start()
                stack.callback(broker.stop)
                mqtt_port = broker.port
        except BrokerError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 2
        use_profile(run_dir)  # before rclpy starts: DDS reads it when the participant is made
        print(f"demo: {len(fleet)} robots from {len(bags)} bags in {bags_dir}", flush=True)
        if plan.vehicles:
            print(f"demo: and {len(plan.vehicles)} VDA 5050 vehicles ({', '.join(v.robot_id for v in plan.vehicles)}); "
                  + (f"their messages checked against {vda_schemas}" if vda_schemas else
                     "their messages not checked (no official schemas: give --vda5050-schemas)"), flush=True)
        started = time.monotonic()
        cores, load_start = machine_cores(), os.getloadavg()[0]
        try:
            with ros_context(domain_id) as context, FleetDemo(
                    context, fleet, mqtt_host=mqtt_host, mqtt_port=mqtt_port, registry=str(run_dir / "registry"),
                    work_dir=run_dir / "robots", rate=rate or 1.0, domain_id=domain_id, kafka=args.kafka,
                    types=types, executor=plan.executor, vehicles=plan.vehicles, vda_schemas=vda_schemas) as demo:
                demo.open()
                if web is not None and demo.coordinator_config is not None:
                    page = FleetWeb(demo.coordinator_config, web).start()
                    stack.callback(page.stop)
                    print(f"demo: fleet page: {page.url}", flush=True)
                choice = choose_rate(demo.due_s(), rate, cores)
                demo.rate = choice.rate
                print(f"demo: {choice.describe()}", flush=True)
                submitted = demo.submit_tasks(2 * (len(fleet) + len(plan.vehicles)) if plan.count is None
                                              else plan.count)
                replay_s = demo.replay(progress=False if args.no_progress else None)
                print(f"demo: replay done in {replay_s:.1f} s; waiting for delivery ...", flush=True)
                demo.drain(args.timeout)
                tasks = {"submitted": len(submitted), **demo.wait_tasks(args.timeout)} if submitted else {}
                streams = list(demo.streams.values())
                vda = demo.vda_report()
                report = fleet_report(streams, replay_s=replay_s, skipped=_skipped(demo.tally.as_dict()), tasks=tasks,
                                      extra={"robots": [r.robot_id for r in fleet], "rate": choice.rate,
                                             "delivered_at": "Kafka (via the edge gateway)" if args.kafka
                                             else "the MQTT broker",
                                             "elapsed_s": round(time.monotonic() - started, 1),
                                             "restarts": dict(demo.restarts), "renamed": demo.renamed(),
                                             "converted": demo.converted(), "task_executor": plan.executor,
                                             "task_progress": [asdict(t) for t in sorted(
                                                 demo.traces.values(), key=lambda t: t.task_id)],
                                             **({"vda5050": vda} if vda is not None else {})})
                report["pace"] = pace_report(
                    choice, lag_ns=demo.lag_ns, published_ns=[t for s in streams for t in s.published_ns],
                    arrived_ns=[t for s in streams for t in s.arrival_ns],
                    latency_p99_ms=report["totals"]["latency_p99_ms"], cores=cores,
                    load=(load_start, os.getloadavg()[0]))
                picture = plot(streams, args.plot,
                               vda_arrivals=demo.vda_wire.tally.arrivals if demo.vda_wire is not None else None)
        except (DemoError, ReplayError) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 2
        except (LinkError, FleetWebError) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 3
        print(render(report))
        print(f"plot: {picture}")
        if args.report_json:
            args.report_json.parent.mkdir(parents=True, exist_ok=True)
            args.report_json.write_text(json.dumps(report, indent=1) + "\n")
            print(f"report: {args.report_json}")
        tasks_ok = not report["tasks"] or report["tasks"].get("done", 0) == report["tasks"]["submitted"]
        vda_ok = "vda5050" not in report or report["vda5050"]["invalid"] == 0
        return 0 if report["all_delivered"] and tasks_ok and vda_ok else 1
    return 1  # pragma: no cover - ExitStack does not swallow


def _rate(text: str) -> float | None:
    """`--rate`: None for auto, else the number (ReplayError naming the option and the fix)."""
    from swarm_bridge.replay import ReplayError, check_rate

    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        fix = "leave it out (auto), or give e.g. 1 for the bags' own timing, 10 for ten times faster"
        raise ReplayError("--rate", f"must be a number > 0 or auto (got {text!r})", fix) from None
    return check_rate(value)


def choose_rate(due_s: list[float], rate: float | None, cores: int) -> RateChoice:
    """The rate to replay at: `rate` when given, else picked from the bags' peak and the cores (demo/pace.py)."""
    from swarm_bridge.demo.pace import MSGS_PER_CORE, RateChoice, offered_peak, pick_rate

    if rate is None:
        return pick_rate(due_s, cores=cores)
    return RateChoice(rate, offered_peak(due_s, rate=rate), cores * MSGS_PER_CORE, picked=False)


def _vda_schemas(given: Path | None) -> Path | None:
    """The official schemas' folder: `--vda5050-schemas` (UsageError when it has no state.schema), else the
    default when it has them, else None (the demo runs unchecked and says so)."""
    folder = given or default_vda5050_schemas()
    if (folder / "state.schema").is_file():
        return folder
    if given is not None:
        raise UsageError(f"--vda5050-schemas {given}", "no state.schema there",
                         "name the json_schemas folder of the VDA 5050 2.1 release (github.com/VDA5050/VDA5050)")
    return None


def _skipped(by_topic: dict[str, Any]) -> dict[str, Any]:
    """The bag topics with skipped publishes (type unknown or without an rclpy class), for the report."""
    return {topic: entry for topic, entry in by_topic.items() if entry["skipped"]}


def mqtt_endpoint(url: str | None) -> tuple[str, int]:
    """(host, port) of an `mqtt://host:port` URL; port 0 when no URL is given (a private broker will say)."""
    if url is None:
        return "127.0.0.1", 0
    parsed = urlparse(url if "://" in url else f"mqtt://{url}")
    if parsed.scheme != "mqtt" or not parsed.hostname:
        raise UsageError(f"--mqtt {url!r}", "expected mqtt://host:port",
                         "e.g. --mqtt mqtt://127.0.0.1:1883, or leave --mqtt out to start a private broker")
    return parsed.hostname, parsed.port or 1883
