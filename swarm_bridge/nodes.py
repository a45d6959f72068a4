"""Node executables (`ros2 run swarm_bridge <node>`): parse args, validate config, run, exit cleanly.

`python -m swarm_bridge.nodes <node> [args]` is what the shims in lib/swarm_bridge run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from swarm_bridge.config import CoordinatorConfig

__all__ = ["fleet_coordinator", "robot_bridge", "sim_navigator", "task_executor"]

log = logging.getLogger("swarm_bridge.ros.robot_bridge")  # the robot bridge's one logger (ros/robot_bridge.py)

EXIT_CONFIG = 2
EXIT_UPLINK = 3


def robot_bridge(argv: Sequence[str] | None = None) -> int:
    """Bridge one robot's ROS topics to its uplink until SIGINT/SIGTERM."""
    from swarm_bridge.codec import CodecError
    from swarm_bridge.config import ConfigError, RobotBridgeConfig, load_config, validate_config
    from swarm_bridge.config.loader import OVERRIDE_HELP
    from swarm_bridge.ros import RobotBridge, RosTypeError
    from swarm_bridge.ros.context import process_node, without_ros_args
    from swarm_bridge.ros.preflight import check_robot_config
    from swarm_bridge.ros.qos import qos_preset
    from swarm_bridge.ros.reader_limits import use_reader_limits
    from swarm_bridge.ros.spin import IDLE_SLICE_S, make_executor, spin_until
    from swarm_bridge.spool import Spool, SpoolError
    from swarm_bridge.transport import LinkError, build_uplink

    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="robot_bridge",
        description="Bridge one robot's ROS topics to MQTT or Kafka (ROS args after --ros-args pass through).",
    )
    parser.add_argument("--config", required=True, help="robot bridge YAML, e.g. config/robot_bridge.yaml")
    parser.add_argument("--robot-id", help="override robot_id from the config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=OVERRIDE_HELP)
    opts = parser.parse_args(without_ros_args(args))
    # The ROS executor wakes per message and needs the GIL back quickly while the outbox drains a backlog;
    # the default 5 ms hand-over starves it (a convoy) and the DDS reader queue overflows at 1 kHz.
    sys.setswitchinterval(0.0005)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _fix_allocator()  # before rclpy and the first image: megabyte buffers must not fragment glibc's arenas

    try:
        config = load_config(opts.config, RobotBridgeConfig, opts.set)
        if opts.robot_id:
            config = validate_config({**config.model_dump(), "robot_id": opts.robot_id}, RobotBridgeConfig,
                                     source=f"{opts.config} (--robot-id)")
        check_robot_config(config, opts.config)  # ROS types and key files, before any socket opens
    except ConfigError as exc:
        print(f"robot_bridge: invalid config\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        spool = Spool(config.spool.file_for(config.fleet, config.robot_id), max_bytes=int(config.spool.max_mb * 2**20))
    except SpoolError as exc:
        print(f"robot_bridge: {opts.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        uplink = build_uplink(config)  # connected below, once the down routes listen
    except LinkError as exc:
        print(f"robot_bridge: {exc}", file=sys.stderr)
        return EXIT_UPLINK

    deepest = max((qos_preset(r.qos, depth=r.qos_depth).depth for r in config.routes), default=0)
    use_reader_limits(spool.path.parent, deepest)  # a reader behind must never push back on a robot's publisher
    with process_node("robot_bridge", args) as node:
        try:
            bridge = RobotBridge(node, config, uplink, spool=spool)
        except (RosTypeError, CodecError) as exc:
            print(f"robot_bridge: {opts.config}: {exc}", file=sys.stderr)
            uplink.close()
            return EXIT_CONFIG
        try:
            # After RobotBridge subscribed the down routes: the commands the broker kept for the robot's persistent
            # session arrive right after the connect and must find them (before, they were ignored and lost).
            uplink.connect(require=config.uplink.require_at_start)
        except LinkError as exc:  # unreachable while required, or refused: nothing was published
            print(f"robot_bridge: {exc}", file=sys.stderr)
            bridge.close()
            uplink.close()
            return EXIT_UPLINK
        bridge.start_vehicle()
        if config.metrics_port is not None:
            port = bridge.metrics.serve(config.metrics_port)
            log.info("robot %s: metrics on http://127.0.0.1:%d/metrics", config.robot_id, port)
        executor = make_executor()
        try:
            spin_until(executor, [node], slice_s=IDLE_SLICE_S)
        finally:
            # Tasks through actions end first (goals cancelled, outcomes published), then the sweep takes them up.
            bridge.stop_tasks(lambda done, timeout_s: spin_until(executor, [node], done=done, timeout_s=timeout_s))
            for uplink_route in bridge.routes:
                uplink_route.sweep()  # what arrived while stopping
            pending = bridge.flush(5.0)
            spool_drops = spool.drops()
            bridge.close()
            uplink.close()
            drops = bridge.drops()
            stats = bridge.outbox.stats
            log.info("robot %s: outbox: %d records submitted, %d sent live, %d through the spool, %d acknowledged, "
                     "%d sends carried several records", config.robot_id, stats.submitted, stats.sent_live,
                     stats.spooled, stats.acked, stats.batches)
            for route, counts in bridge.summary().items():
                swept = f" ({counts['swept']} of the received taken by a sweep)" if counts["swept"] else ""
                log.info("%s: received %d, sent %d, dropped %d%s", route, counts["received"], counts["sent"],
                         counts["dropped"], swept)
                if counts["chunks"] or counts["bytes_encoded"] != counts["bytes_sent"]:
                    ratio = counts["bytes_sent"] / counts["bytes_encoded"] if counts["bytes_encoded"] else 1.0
                    log.info("%s: %d bytes encoded, %d sent (ratio %.3f), %d chunks", route, counts["bytes_encoded"],
                             counts["bytes_sent"], ratio, counts["chunks"])
                if counts["held"]:
                    log.info("%s: %d commands waited for a ROS subscriber before going out or being dropped", route,
                             counts["held"])
                if route in drops:
                    log.warning("%s: dropped by reason: %s", route,
                                ", ".join(f"{reason}: {n}" for reason, n in sorted(drops[route].items())))
            for (stream, reason), count in sorted(spool_drops.items()):
                log.warning("robot %s: stream %s: %d records dropped by the spool (%s) since it was made",
                            config.robot_id, stream, count, reason)
            if pending:
                log.warning("robot %s: %d records not acknowledged at shutdown; they stay spooled in %s",
                            config.robot_id, pending, spool.path)
    return 0


def task_executor(argv: Sequence[str] | None = None) -> int:
    """Run the reference task executor of one robot (demos, end-to-end tests) until SIGINT/SIGTERM."""
    from swarm_bridge.ros.context import process_node, without_ros_args
    from swarm_bridge.ros.spin import make_executor, spin_until
    from swarm_bridge.ros.task_executor import TaskExecutor

    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="task_executor",
        description="A reference robot: answers TaskCommand on /<ns>/task_command with TaskStatus and "
                    "publishes RobotState on /<ns>/robot_state (<ns>: the robot id, '-' as '_', '_' before a "
                    "leading digit).",
    )
    parser.add_argument("--robot-id", required=True, help="the robot id, e.g. amr_007 (its topic namespace, as above)")
    parser.add_argument("--kind", default="amr", help="robot kind reported in RobotState (amr, drone, arm, ...)")
    parser.add_argument("--capabilities", default="navigate",
                        help="comma-separated task kinds it accepts, e.g. navigate,inspect (default navigate)")
    parser.add_argument("--work-s", type=float, default=1.0, help="seconds each task runs (default 1)")
    parser.add_argument("--state-period-s", type=float, default=1.0, help="RobotState period (default 1 s)")
    opts = parser.parse_args(without_ros_args(args))
    if opts.work_s < 0 or opts.state_period_s <= 0:
        print("task_executor: --work-s must be >= 0 and --state-period-s > 0", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with process_node(f"task_executor_{opts.robot_id}", args) as node:
        TaskExecutor(node, opts.robot_id, robot_kind=opts.kind,
                     capabilities=[c.strip() for c in opts.capabilities.split(",") if c.strip()],
                     work_s=opts.work_s, state_period_s=opts.state_period_s)
        spin_until(make_executor(), [node])
    return 0


def sim_navigator(argv: Sequence[str] | None = None) -> int:
    """Run a simulated navigator for one robot (a NavigateToPose action server and RobotState; demos, trying
    tasks through actions) until SIGINT/SIGTERM."""
    from swarm_bridge.ros.context import process_node, without_ros_args
    from swarm_bridge.ros.navigator import SimNavigator
    from swarm_bridge.ros.spin import make_executor, spin_until

    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="sim_navigator",
        description="A simulated robot base: serves nav2_msgs/action/NavigateToPose on /<ns>/navigate_to_pose "
                    "(drives to the goal, gives up beyond its map, honours cancel) and publishes RobotState on "
                    "/<ns>/robot_state (<ns>: the robot id, '-' as '_', '_' before a leading digit).",
    )
    parser.add_argument("--robot-id", required=True, help="the robot id, e.g. amr_007")
    parser.add_argument("--kind", default="amr", help="robot kind reported in RobotState (default amr)")
    parser.add_argument("--capabilities", default="navigate",
                        help="comma-separated task kinds reported in RobotState (default navigate)")
    parser.add_argument("--speed", type=float, default=1.0, help="metres per second (default 1)")
    parser.add_argument("--map-size", type=float, default=100.0, help="side of the square map in m (default 100)")
    opts = parser.parse_args(without_ros_args(args))
    if opts.speed <= 0 or opts.map_size <= 0:
        print("sim_navigator: --speed and --map-size must be > 0", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from swarm_bridge.routing.naming import robot_namespace

    with process_node(f"sim_navigator_{robot_namespace(opts.robot_id).lstrip('_')}", args) as node:
        SimNavigator(node, opts.robot_id, robot_kind=opts.kind, speed_mps=opts.speed, half_size_m=opts.map_size / 2,
                     capabilities=[c.strip() for c in opts.capabilities.split(",") if c.strip()])
        spin_until(make_executor(), [node])
    return 0


def fleet_coordinator(argv: Sequence[str] | None = None) -> int:
    """Run a coordinator instance, and take task requests on the ROS topic tasks/submit, until SIGINT/SIGTERM."""
    import threading

    from swarm_bridge.config import ConfigError, CoordinatorConfig, load_config
    from swarm_bridge.config.loader import COORDINATOR_OVERRIDE_HELP
    from swarm_bridge.coordinator.kafka.service import run_coordinator
    from swarm_bridge.coordinator.kafka.snapshot import TaskSubmitter
    from swarm_bridge.coordinator.kafka.topics import TopicMismatch
    from swarm_bridge.ros.context import process_node, without_ros_args
    from swarm_bridge.ros.fleet_coordinator import FleetCoordinatorNode
    from swarm_bridge.ros.spin import make_executor, spin_until
    from swarm_bridge.transport.kafka_log import flush_kafka_logs

    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="fleet_coordinator", description="Fleet coordinator instance with a "
                                     "ROS topic for task requests (ROS args after --ros-args pass through).")
    parser.add_argument("--config", required=True, help="coordinator YAML, e.g. config/coordinator.yaml")
    parser.add_argument("--instance-id", help="override kafka.instance_id (unique per instance)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=COORDINATOR_OVERRIDE_HELP)
    opts = parser.parse_args(without_ros_args(args))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(opts.config, CoordinatorConfig, opts.set)
        if opts.instance_id:
            config = config.model_validate({**config.model_dump(), "kafka": {**config.kafka.model_dump(),
                                                                             "instance_id": opts.instance_id}})
    except ConfigError as exc:
        print(f"fleet_coordinator: invalid config\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    if config.mode == "mqtt":
        return _site_coordinator(config, args)
    stop = threading.Event()
    failure: list[BaseException] = []

    def coordinate() -> None:
        try:
            run_coordinator(config, stop=stop, handle_signals=False)
        except Exception as exc:  # reported below; the node then exits
            failure.append(exc)
            stop.set()

    worker = threading.Thread(target=coordinate, name="coordinator", daemon=True)
    worker.start()
    with process_node("fleet_coordinator", args) as node:
        submitter = TaskSubmitter(config)
        ros_end = FleetCoordinatorNode(node, submitter.send)
        try:
            spin_until(make_executor(), [node], done=stop.is_set)
        finally:
            stop.set()
            worker.join(timeout=30)
            unconfirmed = submitter.close()
            logging.getLogger("swarm_bridge.fleet_coordinator").info(
                "fleet_coordinator: %d task requests from ROS, %d forwarded, %d failed, %d unconfirmed",
                ros_end.received, submitter.sent, ros_end.failed, unconfirmed)
    if failure:
        flush_kafka_logs()  # librdkafka's repeats counted so far, then the one line that says what to do
        error = failure[0]  # LinkError and TopicMismatch name the endpoint or topic and the fix themselves
        print(f"fleet_coordinator: {str(error) or type(error).__name__}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(error, TopicMismatch) else EXIT_UPLINK
    return 0


def _site_coordinator(config: CoordinatorConfig, args: list[str]) -> int:
    """fleet_coordinator in mode mqtt: the single-site coordinator in this process; ROS task requests go to it."""
    from swarm_bridge.coordinator.site.runner import SiteCoordinator
    from swarm_bridge.ros.context import process_node
    from swarm_bridge.ros.fleet_coordinator import FleetCoordinatorNode
    from swarm_bridge.ros.spin import make_executor, spin_until
    from swarm_bridge.transport import LinkError

    try:
        site = SiteCoordinator(config).start()
    except LinkError as exc:
        print(f"fleet_coordinator: {exc}", file=sys.stderr)
        return EXIT_UPLINK
    with process_node("fleet_coordinator", args) as node:
        ros_end = FleetCoordinatorNode(node, site.submit_payload)
        try:
            spin_until(make_executor(), [node])
        finally:
            site.stop()
            logging.getLogger("swarm_bridge.fleet_coordinator").info(
                "fleet_coordinator: %d task requests from ROS; %s", ros_end.received, site.summary())
    return 0


def _fix_allocator() -> None:
    """Before any image flows: glibc's mmap threshold fixed, so megabyte buffers do not fragment its heap arenas."""
    from swarm_bridge.allocator import fix_mmap_threshold

    settings = fix_mmap_threshold()
    if settings.mmap_threshold is not None:
        log.info("allocator: glibc's mmap threshold fixed at %d bytes (large buffers are mappings of their own, "
                 "given back when freed)", settings.mmap_threshold)
    else:
        log.info("allocator: malloc left as it is: %s", settings.reason)


_NODES = {"robot_bridge": robot_bridge, "task_executor": task_executor, "sim_navigator": sim_navigator,
          "fleet_coordinator": fleet_coordinator}


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch `python -m swarm_bridge.nodes <node> ...` to the node's entry."""
    from swarm_bridge.signals import exit_with_parent_if_asked

    exit_with_parent_if_asked()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in _NODES:
        print(f"usage: python -m swarm_bridge.nodes {{{','.join(_NODES)}}} [args]", file=sys.stderr)
        return EXIT_CONFIG
    return _NODES[args[0]](args[1:])


if __name__ == "__main__":
    sys.exit(main())
