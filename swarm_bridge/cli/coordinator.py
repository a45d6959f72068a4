"""`swarm-bridge coordinator`, `task submit`, `task cancel`, `fleet status`, `fleet pause`/`resume` and `fleet web`:
run, feed and look at the fleet coordinator."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm_bridge.cli.web import add_web_options, page_beside, web_settings
from swarm_bridge.config.loader import COORDINATOR_OVERRIDE_HELP

__all__ = ["register"]

EXIT_CONFIG, EXIT_KAFKA = 2, 3


def register(sub: Any) -> None:
    """Add the `coordinator`, `task` and `fleet` commands."""
    run = sub.add_parser("coordinator", help="run a fleet coordinator instance (several share the shards)",
                         description="Consume robot state, task status and submissions from Kafka, assign tasks, "
                         "send sharded commands; instances in the same group split the shards. With mode: mqtt "
                         "in the config, one coordinator for a single site, straight on its MQTT broker.")
    run.add_argument("--config", type=Path, required=True, help="coordinator YAML, e.g. config/coordinator.yaml")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=COORDINATOR_OVERRIDE_HELP)
    run.add_argument("--instance-id", help="override kafka.instance_id (unique per instance)")
    add_web_options(run, port_flag="--web", default_port=None)
    run.set_defaults(run=_run)

    task = sub.add_parser("task", help="submit tasks to the coordinators")
    actions = task.add_subparsers(dest="task_command", metavar="ACTION", required=True)
    submit = actions.add_parser("submit", help="send one task request (the task id is its idempotency key)")
    submit.add_argument("--config", type=Path, required=True, help="coordinator YAML (Kafka, topics, shards)")
    submit.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=COORDINATOR_OVERRIDE_HELP)
    submit.add_argument("--task-id", required=True, help="idempotency key: submitting it again changes nothing")
    submit.add_argument("--kind", required=True, help="capability needed: navigate, pick, inspect, ...")
    submit.add_argument("--x", type=float, default=0.0, help="target position x, metres in --frame-id")
    submit.add_argument("--y", type=float, default=0.0, help="target position y, metres in --frame-id")
    submit.add_argument("--z", type=float, default=0.0, help="target position z, metres in --frame-id")
    submit.add_argument("--frame-id", default="map", help="frame of the target position (default: map)")
    submit.add_argument("--priority", type=int, default=0, help="0 (lowest) .. 255")
    submit.add_argument("--deadline-in", type=float, default=None, metavar="SECONDS", help="deadline from now")
    submit.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="task parameter")
    submit.add_argument("--requested-by", default=None, help="who asked (kept with the task request)")
    submit.set_defaults(run=_submit)
    cancel = actions.add_parser("cancel", help="cancel one task: its robot is told (a VDA 5050 vehicle by "
                                "cancelOrder); it ends cancelled (mode kafka: once the robot confirms)")
    cancel.add_argument("--config", type=Path, required=True, help="coordinator YAML")
    cancel.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=COORDINATOR_OVERRIDE_HELP)
    cancel.add_argument("--task-id", required=True, help="the id the task was submitted with")
    cancel.add_argument("--reason", default="", help="kept as the task's reason")
    cancel.set_defaults(run=_cancel)

    fleet = sub.add_parser("fleet", help="look at the fleet; pause and resume VDA 5050 vehicles")
    fleet_actions = fleet.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    status = fleet_actions.add_parser("status", help="a table of robots and tasks, read from Kafka")
    status.add_argument("--config", type=Path, required=True, help="coordinator YAML")
    status.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=COORDINATOR_OVERRIDE_HELP)
    status.add_argument("--tasks", type=int, default=20, help="show at most this many unfinished tasks")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.set_defaults(run=_status)
    for name, paused in (("pause", True), ("resume", False)):
        action = "startPause" if paused else "stopPause"
        pause = fleet_actions.add_parser(name, help=f"{name} one VDA 5050 vehicle (instantActions {action})",
                                         description=f"Send a VDA 5050 vehicle instantActions {action} through its "
                                         "coordinator (mode kafka: the instance owning the vehicle's shard, via the "
                                         "gateway's down rule; mode mqtt: the site coordinator). `fleet status` shows "
                                         "it paused once the vehicle reports it. Exit 1: refused (a swarm_bridge "
                                         "robot, no such vehicle seen); 2: bad config (no vda5050: section); 3: "
                                         "unreachable.")
        pause.add_argument("--config", type=Path, required=True, help="coordinator YAML (with a vda5050: section)")
        pause.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=COORDINATOR_OVERRIDE_HELP)
        pause.add_argument("--robot-id", required=True, metavar="MANUFACTURER/SERIAL",
                           help="the vehicle, as `fleet status` lists it (manufacturer/serialNumber, e.g. acme/agv1)")
        pause.add_argument("--reason", default="", help="why (logged by the coordinator)")
        pause.set_defaults(run=_pause, paused=paused)
    web = fleet_actions.add_parser("web", help="serve a live page of the fleet (read-only), from the same sources "
                                   "the coordinator reads", description="Robots on a map, presence, battery, tasks "
                                   "and their states, stream rates and drops, updated live (server-sent events); "
                                   "read from Kafka, or the site's MQTT broker in mode mqtt. Exit 2: bad config "
                                   "or options; 3: the source is unreachable.")
    web.add_argument("--config", type=Path, required=True, help="coordinator YAML")
    web.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=COORDINATOR_OVERRIDE_HELP)
    add_web_options(web, port_flag="--port", default_port=8080)
    web.set_defaults(run=_web)


def _config(path: Path, overrides: list[str]) -> Any:
    from swarm_bridge.config import ConfigError, CoordinatorConfig, load_config

    try:
        return load_config(path, CoordinatorConfig, overrides)
    except ConfigError as exc:
        print(f"coordinator: invalid config\n{exc}", file=sys.stderr)
        return None


def _run(args: argparse.Namespace) -> int:
    config = _config(args.config, args.set)
    if config is None:
        return EXIT_CONFIG
    if args.web is None:
        return MODES[config.mode].run(args, config)
    from swarm_bridge.fleetweb import FleetWebSettingError

    try:
        settings = web_settings(args, args.web)
    except FleetWebSettingError as exc:
        print(f"coordinator: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop = threading.Event()
    page = page_beside(config, settings, stop)
    try:
        return MODES[config.mode].run(args, config)
    finally:
        stop.set()
        page.join(15)


def _web(args: argparse.Namespace) -> int:
    """`fleet web`: the live page until SIGINT/SIGTERM."""
    from swarm_bridge.coordinator.wiring import stop_event
    from swarm_bridge.fleetweb import FleetWeb, FleetWebError, FleetWebSettingError

    config = _config(args.config, args.set)
    if config is None:
        return EXIT_CONFIG
    try:
        settings = web_settings(args, args.port)
    except FleetWebSettingError as exc:
        print(f"fleet web: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    stop = stop_event(None, handle_signals=True)
    try:
        web = FleetWeb(config, settings).start()
    except FleetWebSettingError as exc:
        print(f"fleet web: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FleetWebError as exc:
        print(f"fleet web: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    print(f"fleet page: {web.url}  (read-only; Ctrl-C stops it)", flush=True)
    try:
        stop.wait()
    finally:
        web.stop()
    return 0


def _run_kafka(args: argparse.Namespace, config: Any) -> int:
    """Mode kafka: one of the sharded instances, until SIGINT/SIGTERM."""
    from swarm_bridge.coordinator.kafka.service import run_coordinator
    from swarm_bridge.coordinator.kafka.topics import TopicMismatch
    from swarm_bridge.transport.kafka_clients import KafkaException
    from swarm_bridge.transport.link import LinkError

    if args.instance_id:
        config = config.model_validate({**config.model_dump(), "kafka": {**config.kafka.model_dump(),
                                                                         "instance_id": args.instance_id}})
    # What the imports built lives as long as the process: out of the garbage collector's sight, a full collection
    # walks only what the rounds keep (it walked ~75,000 objects, ~50 ms between two rounds, on a 2-core hub).
    gc.collect()
    gc.freeze()
    try:
        run_coordinator(config)
    except TopicMismatch as exc:
        print(f"coordinator: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except LinkError as exc:
        print(f"coordinator: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    except KafkaException as exc:
        print(f"coordinator: kafka://{config.kafka.servers}: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    return 0


def _run_site(args: argparse.Namespace, config: Any) -> int:
    """Mode mqtt: the single-site coordinator, in memory, straight on the site's broker."""
    from swarm_bridge.coordinator.site.service import run_site
    from swarm_bridge.transport.link import LinkError

    if args.instance_id:
        print("coordinator: --instance-id is for mode kafka; a site (mode mqtt) runs exactly one instance",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        run_site(config)
    except LinkError as exc:
        print(f"coordinator: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    return 0


def _submit(args: argparse.Namespace) -> int:
    config = _config(args.config, args.set)
    if config is None:
        return EXIT_CONFIG
    params: dict[str, str] = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"task submit: --param {item!r}: expected KEY=VALUE", file=sys.stderr)
            return EXIT_CONFIG
        params[key] = value
    doc: dict[str, Any] = {"task_id": args.task_id, "kind": args.kind, "priority": args.priority,
                           "target": {"x": args.x, "y": args.y, "z": args.z, "frame_id": args.frame_id},
                           "parameters": params, "requested_by": args.requested_by}
    if args.deadline_in is not None:
        doc["deadline_ns"] = time.time_ns() + int(args.deadline_in * 1e9)
    return MODES[config.mode].submit(config, doc)


def _submit_to_kafka(config: Any, doc: dict[str, Any]) -> int:
    """Mode kafka: produce the request to the submit topic and wait for Kafka's confirmation."""
    from swarm_bridge.coordinator.kafka.snapshot import submit_tasks

    if submit_tasks(config, [doc]):
        print(f"task submit: {doc['task_id']}: not confirmed by kafka://{config.kafka.servers}",
              file=sys.stderr)
        return EXIT_KAFKA
    print(f"submitted {doc['task_id']} to {config.topics.submit}")
    return 0


def _submit_to_site(config: Any, doc: dict[str, Any]) -> int:
    """Mode mqtt: publish the request and print the coordinator's answer (exit 1 when rejected)."""
    from swarm_bridge.coordinator.site.client import SiteUnreachable, submit_to_site

    try:
        answer = submit_to_site(config, doc)
    except SiteUnreachable as exc:
        print(f"task submit: {doc['task_id']}: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    if not answer.get("accepted"):
        print(f"task submit: rejected: {answer.get('reason')}", file=sys.stderr)
        return 1
    again = " (already known; nothing changed)" if answer.get("duplicate") else ""
    print(f"submitted {answer['task_id']}: {answer['state']}{again}")
    return 0


def _cancel(args: argparse.Namespace) -> int:
    config = _config(args.config, args.set)
    if config is None:
        return EXIT_CONFIG
    return MODES[config.mode].cancel(args, config)


def _cancel_at_site(args: argparse.Namespace, config: Any) -> int:
    """Mode mqtt: ask the site coordinator to cancel; exit 1 when it could not (no such task, already ended)."""
    from swarm_bridge.coordinator.site.client import SiteUnreachable, cancel_at_site

    try:
        answer = cancel_at_site(config, args.task_id, args.reason)
    except SiteUnreachable as exc:
        print(f"task cancel: {args.task_id}: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    if not answer.get("accepted"):
        print(f"task cancel: {args.task_id}: not cancelled: {answer.get('reason')}", file=sys.stderr)
        return 1
    print(f"cancelled {answer['task_id']}")
    return 0


def _cancel_on_kafka(args: argparse.Namespace, config: Any) -> int:
    """Mode kafka: put a cancel request on the submit topic; the task's owner cancels it (its robot is told, and
    the task ends cancelled once the robot confirms; a queued one at once). `fleet status` shows the outcome."""
    from swarm_bridge.coordinator.kafka.snapshot import cancel_task

    if cancel_task(config, args.task_id, args.reason):
        print(f"task cancel: {args.task_id}: not confirmed by kafka://{config.kafka.servers}", file=sys.stderr)
        return EXIT_KAFKA
    print(f"cancel of {args.task_id} sent to {config.topics.submit}; it ends cancelled once its robot confirms")
    return 0


def _pause(args: argparse.Namespace) -> int:
    """`fleet pause` / `fleet resume`: refused at once when the config drives no VDA 5050 vehicles, else sent by
    mode (the coordinator's fleet says whether the robot is one of its vehicles)."""
    from swarm_bridge.coordinator.core.pause import config_refusal

    config = _config(args.config, args.set)
    if config is None:
        return EXIT_CONFIG
    why = config_refusal(args.robot_id, None) if config.vda5050 is None else None
    if why is not None:
        print(f"fleet {_verb(args)}: {why}", file=sys.stderr)
        return EXIT_CONFIG
    return MODES[config.mode].pause(args, config)


def _verb(args: argparse.Namespace) -> str:
    return "pause" if args.paused else "resume"


def _pause_at_site(args: argparse.Namespace, config: Any) -> int:
    """Mode mqtt: ask the site coordinator; exit 1 when it refused (not a vehicle it has seen)."""
    from swarm_bridge.coordinator.site.client import SiteUnreachable, pause_at_site

    try:
        answer = pause_at_site(config, args.robot_id, args.paused, args.reason)
    except SiteUnreachable as exc:
        print(f"fleet {_verb(args)}: {args.robot_id}: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    if not answer.get("accepted"):
        print(f"fleet {_verb(args)}: refused: {answer.get('reason')}", file=sys.stderr)
        return 1
    print(f"{answer['action']} sent to {args.robot_id}; `fleet status` shows it paused once the vehicle reports it"
          if args.paused else f"{answer['action']} sent to {args.robot_id}")
    return 0


def _pause_on_kafka(args: argparse.Namespace, config: Any) -> int:
    """Mode kafka: check the vehicle is one the coordinators have seen (read from Kafka as `fleet status` does), then
    put the request on the submit topic, on the vehicle's shard: its owner sends the instant action."""
    from swarm_bridge.coordinator.core.pause import pause_refusal
    from swarm_bridge.coordinator.kafka.snapshot import pause_vehicle, read_snapshot
    from swarm_bridge.routing.sharding import shard_of
    from swarm_bridge.transport.kafka_clients import KafkaException

    robot_id = args.robot_id
    try:
        snap = read_snapshot(config)
    except KafkaException as exc:
        print(f"fleet {_verb(args)}: kafka://{config.kafka.servers}: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    why = pause_refusal(robot_id, config.vda5050.manufacturers, snap.vehicles, snap.fleet)
    if why is not None:
        print(f"fleet {_verb(args)}: refused: {why}", file=sys.stderr)
        return 1
    if pause_vehicle(config, robot_id, args.paused, args.reason):
        print(f"fleet {_verb(args)}: {robot_id}: not confirmed by kafka://{config.kafka.servers}", file=sys.stderr)
        return EXIT_KAFKA
    action = "startPause" if args.paused else "stopPause"
    print(f"{action} for {robot_id} sent to {config.topics.submit} (shard {shard_of(robot_id, config.shards)}); "
          "`fleet status` shows the vehicle's paused flag once it reports it")
    return 0


def _site_status(args: argparse.Namespace, config: Any) -> int:
    """Mode mqtt: the fleet status the site coordinator keeps retained on its broker."""
    from swarm_bridge.coordinator.core.table import table
    from swarm_bridge.coordinator.site.client import SiteUnreachable, read_site_status

    try:
        doc = read_site_status(config)
    except SiteUnreachable as exc:
        print(f"fleet status: {exc}", file=sys.stderr)
        return EXIT_KAFKA
    if args.json:
        print(json.dumps(doc))
        return 0
    robots = doc["robots"]
    print(f"robots: {len(robots)} ({sum(r['online'] for r in robots)} online)")
    print(table(("robot", "kind", "presence", "mode", "battery", "position", "tasks", "current", "capabilities"),
                [(r["robot_id"], r["kind"], "online" if r["online"] else "OFFLINE",
                  r["mode"].lower() + (", paused" if r.get("paused") else ""),
                  "?" if r["battery_percent"] is None else f"{r['battery_percent']:.0f}%",
                  f"({r['x']:.1f}, {r['y']:.1f})", str(r["tasks"]), r["current_task_id"] or "-",
                  ",".join(r["capabilities"])) for r in robots]))
    print()
    print("tasks: " + ", ".join(f"{state} {n}" for state, n in doc["summary"]["tasks"].items()))
    print(table(("task", "kind", "state", "robot", "priority", "attempts", "reason"),
                [(t["task_id"], t["kind"], t["state"], t["robot_id"] or "-", str(t["priority"]), str(t["attempts"]),
                  t["reason"] or "-") for t in doc["open_tasks"][:args.tasks]]))
    return 0


def _status(args: argparse.Namespace) -> int:
    config = _config(args.config, args.set)
    if config is None:
        return EXIT_CONFIG
    return MODES[config.mode].status(args, config)


def _kafka_status(args: argparse.Namespace, config: Any) -> int:
    """Mode kafka: the fleet and tasks read back from the state, presence and task-event topics."""
    from swarm_bridge.coordinator.core.table import fleet_tables
    from swarm_bridge.coordinator.kafka.snapshot import read_snapshot

    snap = read_snapshot(config)
    now = time.time_ns()
    stale = int(config.tasks.robot_offline_after_s * 1e9)
    if args.json:
        robots = [{"robot_id": r.robot_id, "kind": r.kind, "online": r.reachable(now, stale), "mode": r.mode.name,
                   "battery_percent": r.battery_percent, "x": r.x, "y": r.y, "paused": r.paused,
                   "tasks": snap.book.loads.get(r.robot_id, 0)} for r in snap.fleet]
        print(json.dumps({"robots": robots, "tasks": snap.book.counts(), "malformed": snap.malformed}))
        return 0
    print(fleet_tables(snap.fleet, snap.book, now_ns=now, stale_after_ns=stale, max_tasks=args.tasks))
    if snap.malformed:
        print(f"({snap.malformed} malformed records skipped)")
    return 0


@dataclass(frozen=True)
class Mode:
    """What the commands do in one coordinator mode (`mode:` in the coordinator config)."""

    run: Callable[[argparse.Namespace, Any], int]
    submit: Callable[[Any, dict[str, Any]], int]
    status: Callable[[argparse.Namespace, Any], int]
    cancel: Callable[[argparse.Namespace, Any], int]
    pause: Callable[[argparse.Namespace, Any], int]


MODES: dict[str, Mode] = {
    "kafka": Mode(run=_run_kafka, submit=_submit_to_kafka, status=_kafka_status, cancel=_cancel_on_kafka,
                  pause=_pause_on_kafka),
    "mqtt": Mode(run=_run_site, submit=_submit_to_site, status=_site_status, cancel=_cancel_at_site,
                 pause=_pause_at_site),
}
"""Coordinator mode -> the runner, task submission, cancel, pause and fleet status of that mode; a new mode adds a
row."""
