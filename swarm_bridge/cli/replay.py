"""`swarm-bridge replay`: publish recorded bags into ROS as N robots, on the bags' own clock."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

__all__ = ["register"]

EXIT_USAGE = 2
ACK_WAIT_S = 5.0  # at the end, how long reliable subscribers may take to acknowledge the last messages
_ROBOT_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

log = logging.getLogger("swarm_bridge.replay")


def register(sub: Any) -> None:
    """Add the `replay` command."""
    parser = sub.add_parser(
        "replay",
        help="publish bags into ROS as N robots (/robot_000/<topic>, ...) with the original timing",
        description=(
            "Reads rosbag2 folders (metadata.yaml + .db3/.mcap), single .mcap/.db3 files and ROS 1 .bag files "
            "and publishes every message as raw CDR under /<robot_id><topic> for each robot, on the bag's "
            "clock scaled by --rate (each bag starts at 0; several bags play side by side). ROS 1 messages "
            "are converted to the ROS 2 type of the same name (tf/tfMessage becomes tf2_msgs/TFMessage). "
            "Topics whose type has no definition (pass --msg-dir) or no installed rclpy class are skipped "
            "and counted; the counts per topic are printed at the end."
        ),
        epilog="example: swarm-bridge replay ../shared/data/bags/polymath_cmd_vel_mcap/cmd_vel_only.mcap "
               "--robots 3 --rate 2 --topics /vehicle/cmd_vel",
    )
    parser.add_argument("bags", nargs="+", metavar="BAG", type=Path,
                        help="a rosbag2 folder, a .mcap or .db3 file, or a ROS 1 .bag file")
    parser.add_argument("--robots", type=int, default=1, metavar="N",
                        help="replay as N robots: robot_000 ... robot_<N-1> (default 1)")
    parser.add_argument("--robot-prefix", default="robot", metavar="NAME",
                        help="robot ids are NAME_000, NAME_001, ... (default robot)")
    parser.add_argument("--rate", type=float, default=1.0, metavar="R",
                        help="speed factor on the recorded timing: 2 = twice as fast (default 1)")
    parser.add_argument("--loop", type=int, nargs="?", const=0, default=1, metavar="N",
                        help="--loop: play again and again until Ctrl-C; --loop N: play N times")
    parser.add_argument("--topics", nargs="+", action="extend", default=[], metavar="TOPIC",
                        help="replay only these bag topics, e.g. /odom /tf (put after the bags; default all)")
    parser.add_argument("--msg-dir", action="append", default=[], type=Path, metavar="DIR",
                        help="extra .msg definitions for bags that carry none (<DIR>/<pkg>/msg/<Name>.msg); "
                        "repeatable. Installed interface packages are used too")
    parser.add_argument("--bag-distro", default="auto", metavar="DISTRO",
                        help="the ROS 2 distribution (humble, jazzy, ...) whose definitions a rosbag2 bag without "
                        "its own was recorded with; default auto: what the bag says, else humble")
    parser.add_argument("--wait", type=float, default=2.0, metavar="SECONDS",
                        help="before publishing, wait up to SECONDS for a subscriber on every topic (default 2)")
    parser.add_argument("--list", action="store_true",
                        help="only list each bag's topics, types, counts and whether they can be published")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (default: on a terminal)")
    parser.add_argument("--report-json", type=Path, metavar="FILE",
                        help="also write the per-topic counts (read, published, skipped, reasons) as JSON")
    parser.set_defaults(run=run)


def _usage_problem(args: argparse.Namespace) -> str:
    if args.robots < 1:
        return f"--robots must be >= 1 (got {args.robots})"
    if not _ROBOT_PREFIX.fullmatch(args.robot_prefix):
        return f"--robot-prefix must be a ROS name token like 'robot' or 'amr' (got '{args.robot_prefix}')"
    if args.loop < 0:
        return f"--loop N must be >= 1, or --loop alone to repeat until Ctrl-C (got {args.loop})"
    if not args.wait >= 0:
        return f"--wait must be >= 0 seconds (got {args.wait})"
    return ""


def run(args: argparse.Namespace) -> int:
    """Open the bags, publish them as the robots, print per-topic counts; 2 on bad input."""
    from swarm_bridge.replay import ReplayError, ReplayTypes, check_rate, open_bags, select_topics

    problem = _usage_problem(args)
    if problem:
        print(f"replay: {problem}", file=sys.stderr)
        return EXIT_USAGE
    with ExitStack() as stack:
        try:
            check_rate(args.rate)
            types = ReplayTypes(msg_dirs=args.msg_dir, bag_distro=args.bag_distro)
            bags = open_bags(args.bags, types)
            for bag in bags:
                stack.callback(bag.close)
            topics = select_topics(bags, args.topics)
            if args.list:
                _print_topics(bags)
                return 0
            return _publish(args, bags, topics)
        except ReplayError as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return EXIT_USAGE
    return 0


def _print_topics(bags: list[Any]) -> None:
    from swarm_bridge.ros.types import RosTypeError, message_class

    for bag in bags:
        defined = "" if bag.distro is None else (
            ", definitions: its own" if bag.own_definitions else f", definitions: {bag.distro}")
        print(f"{bag.path} ({bag.format}, {bag.message_count} messages{defined})")
        for topic in bag.topics.values():
            why = topic.skip
            if not why:
                try:
                    message_class(topic.ros_type)
                except RosTypeError as exc:
                    why = f"no rclpy message class ({exc})"
            name = f"{topic.recorded} -> {topic.name}" if topic.recorded and not topic.skip else topic.name
            action = f"skip: {why}" if why else f"publish ({topic.converted})" if topic.converted else "publish"
            print(f"  {name}  {topic.ros_type}  {topic.count}  {action}")


def _publish(args: argparse.Namespace, bags: list[Any], topics: list[str]) -> int:
    from swarm_bridge.replay import ReplayError, ReplayTally, merged, schedule
    from swarm_bridge.ros.context import process_node
    from swarm_bridge.ros.replay import RosReplay, robot_ids
    from swarm_bridge.signals import stop_on_signals

    selected = [t for bag in bags for t in bag.topics.values() if t.name in topics]
    total_read = sum(t.count for t in selected)
    if total_read == 0:
        raise ReplayError(f"--topics {' '.join(topics)}", "the selected topics hold no messages",
                          "pick topics with messages (see --list)")
    for topic in selected:
        if topic.recorded and not topic.skip:
            log.info("replay: bag topic %s is published as %s (a valid ROS 2 name, docs/replay.md)", topic.recorded,
                     topic.name)
        if topic.converted and not topic.skip:
            log.info("replay: %s: %s", topic.name, topic.converted)
    loops = None if args.loop == 0 else args.loop
    robots = robot_ids(args.robots, args.robot_prefix)
    tally = ReplayTally()
    with stop_on_signals() as stop, process_node("swarm_bridge_replay") as node:
        replay = RosReplay(node, {t.name: t for t in selected}.values(), robots, tally)
        if args.wait > 0:
            lonely = replay.wait_for_subscribers(args.wait, stop)
            if lonely:
                log.info("replay: no subscriber after %.1f s on %d of %d topics (e.g. %s); starting anyway",
                         args.wait, len(lonely), len(replay.published_topics), lonely[0])
        log.info("replay: %d bag(s), %d topic(s), %d message(s) per loop, as %d robot(s) %s..%s at rate %g",
                 len(bags), len(topics), total_read, len(robots), robots[0], robots[-1], args.rate)
        plan = schedule(lambda: merged(bags, topics), rate=args.rate, loops=loops)
        try:
            finished = replay.run(plan, stop=stop, total=None if loops is None else total_read * loops,
                                  progress=False if args.no_progress else None)
        except ReplayError as exc:
            print(f"replay: {exc}", file=sys.stderr)
            _report(args, tally)
            return EXIT_USAGE
        behind = [] if stop.is_set() else replay.wait_for_acks(ACK_WAIT_S)
        if behind:
            log.warning("replay: %d topic(s) not fully acknowledged by their subscribers after %.0f s (e.g. %s); "
                        "a subscriber that fell behind may miss the last messages",
                        len(behind), ACK_WAIT_S, behind[0])
    if not finished:
        print("replay: stopped early", file=sys.stderr)
    _report(args, tally)
    return 0


def _report(args: argparse.Namespace, tally: Any) -> None:
    print(tally.table())
    if args.report_json:
        args.report_json.write_text(json.dumps(tally.as_dict(), indent=2) + "\n")
