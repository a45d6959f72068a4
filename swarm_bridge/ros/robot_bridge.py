"""The robot bridge: wires a robot's routes, its outbox (spool + uplink) and metrics; does none of their work."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from swarm_bridge.codec.chunks import is_chunk
from swarm_bridge.codec.compression import COMPRESSION_PROPERTY
from swarm_bridge.codec.formats import FORMATS
from swarm_bridge.codec.framing import frame_batch
from swarm_bridge.codec.recognise import recognise
from swarm_bridge.codec.wire import WireDecoder, WireEncoder, registry_ids, route_subject, wire_decoder, wire_encoder
from swarm_bridge.commands import CommandVerifier, Keyring
from swarm_bridge.config import RobotBridgeConfig, default_registry
from swarm_bridge.metrics import BridgeMetrics
from swarm_bridge.ros.action_tasks import ActionTasks
from swarm_bridge.ros.discovery import RouteDiscovery
from swarm_bridge.ros.ros_to_uplink import SWEEP_PERIOD_S, UplinkRoute
from swarm_bridge.ros.uplink_budget import UplinkBudget
from swarm_bridge.ros.uplink_reader import UplinkReader
from swarm_bridge.ros.uplink_to_ros import DownlinkRoute
from swarm_bridge.ros.vda_vehicle import VdaVehicle
from swarm_bridge.routing import Route, routes_for
from swarm_bridge.spool import Spool
from swarm_bridge.transport import Uplink
from swarm_bridge.transport.outbox import Outbox, Outgoing

__all__ = ["RobotBridge"]

log = logging.getLogger(__name__)

# Records that wait in memory while the uplink is up but slow to acknowledge (the in-flight window is full), before
# the spool takes over: a moment's lag costs no SQLite round trip on the ROS thread's lock (measured: ~20 % of
# Odometry records at 18-22k msgs/s went through the spool without it).
OVERFLOW_BYTES = 8 << 20
BUDGET_PARAMETER = "budget_bytes_per_s"  # the node's parameter that changes the budget at run time


class RobotBridge:
    """One UplinkRoute per up route, all feeding one outbox; one DownlinkRoute per down route."""

    def __init__(self, node: Node, config: RobotBridgeConfig, uplink: Uplink, *, spool: Spool | None = None,
                 metrics: BridgeMetrics | None = None) -> None:
        self.config = config
        self.node = node
        self.uplink = uplink
        self.metrics = metrics or BridgeMetrics()
        commands = config.commands  # trusted keys load first: a bad key file stops the start before any thread
        verifier = CommandVerifier(Keyring.from_files(commands.key_files()), required=commands.require_signed)
        self.spool = spool or Spool(config.spool.file_for(config.fleet, config.robot_id),
                                    max_bytes=int(config.spool.max_mb * 2**20))
        batch = config.uplink.batch_limit  # records of one stream per send (1 on Kafka: its producer batches)
        self._batches: dict[str, str] = {}  # destination -> its route's record format, which says how to batch
        self.outbox = Outbox(uplink, self.spool, window=config.uplink.max_inflight, on_acked=self._acked,
                             pack=self._pack if batch > 1 else None, max_batch=batch, overflow_bytes=OVERFLOW_BYTES,
                             alone=is_chunk, max_batch_bytes=config.uplink.chunk_bytes)
        self.budget = None if config.budget is None else UplinkBudget(config.budget, self.outbox,
                                                                       on_drop=self._budget_drop)
        if self.budget is not None:
            self.outbox.pace_drain(self.budget)  # a drain after an outage stays within the budget too
            self._budget_parameter(self.budget)
        self.run = self.spool.start_run()
        self.registry = registry_ids(config.registry or default_registry())  # one per process, closed by close()
        routes = routes_for(config)
        self.reader = UplinkReader(node.context)  # one thread reads every up route's DDS reader, not the executor
        self.routes = [self._uplink_route(route) for route in routes if route.direction == "up"]
        self.downlinks = [DownlinkRoute(node, route, robot_id=config.robot_id, uplink=uplink, metrics=self.metrics,
                                        decoder=self._decoder(route), verifier=verifier,
                                        max_age_s=commands.max_age_s, max_clock_skew_s=commands.max_clock_skew_s,
                                        hold_s=commands.hold_s, hold_max=commands.hold_max)
                          for route in routes if route.direction == "down"]
        self.discovery = RouteDiscovery(node, config, taken={r.ros_topic for r in routes},
                                        streams={r.stream for r in routes}, on_route=self._add_route)
        # Read when scraped: the spool's depth and the link's state cost the hot path nothing.
        self.metrics.spool_records.set_function(self.spool.depth)
        self.metrics.spool_bytes.set_function(lambda: self.spool.bytes_used)
        self.metrics.uplink_connected.labels(uplink.endpoint).set_function(lambda: float(uplink.connected))
        # Links that have no such thing (Kafka) count none.
        self.metrics.watch_uplink(lambda: {"ack_timeouts": getattr(uplink, "ack_timeouts", 0)})
        self._latency = {r.route.stream: self.metrics.latency.labels(str(r.route)) for r in self.routes}
        # One timer sweeps every up route (one each cost an idle bridge a wake-up per route and period).
        self._sweeper = node.create_timer(SWEEP_PERIOD_S, self._sweep)
        # Tasks through ROS 2 actions: after the routes, so the task topics have their ends on this node.
        self.tasks = ActionTasks(node, config) if config.tasks is not None else None
        # The robot as a VDA 5050 vehicle: its own MQTT session, started by `start_vehicle` after the uplink.
        self.vehicle = VdaVehicle(node, config) if config.vda5050 is not None else None
        self.reader.start()  # last: a start that fails leaves no thread waiting in rcl after the context is gone
        log.info("robot %s: commands %s, trusted keys: %s", config.robot_id,
                 "must be signed" if commands.require_signed else "may be unsigned",
                 ", ".join(sorted(verifier.keyring.keys)) or "none")
        log.info("robot %s: run %d, %d routes up, %d down, via %s (spool %s, %d records waiting)", config.robot_id,
                 self.run, len(self.routes), len(self.downlinks), uplink.endpoint, self.spool.path, self.spool.depth())

    def _add_route(self, route: Route) -> None:
        """A route found in the ROS graph joins the others."""
        self.routes.append(self._uplink_route(route))
        self._latency[route.stream] = self.metrics.latency.labels(str(route))

    def _sweep(self) -> None:
        """Timer: each up route takes what its reader holds without an executor event (see UplinkRoute.sweep)."""
        for uplink_route in self.routes:
            uplink_route.sweep(wait=False)  # the reader thread is taking: nothing left behind

    def _uplink_route(self, route: Route) -> UplinkRoute:
        return UplinkRoute(self.node, route, robot_id=self.config.robot_id, outbox=self.outbox, metrics=self.metrics,
                           encoder=self._encoder(route), run=self.run, chunk_bytes=self.config.uplink.chunk_bytes,
                           sink=self.budget, reader=self.reader)

    def _budget_parameter(self, budget: UplinkBudget) -> None:
        """The node's `budget_bytes_per_s` parameter: the budget, changed at run time
        (`ros2 param set <node> budget_bytes_per_s 1000000`); a value <= 0 is refused."""
        self.node.declare_parameter(BUDGET_PARAMETER, float(budget.budget.bytes_per_s))
        self.metrics.budget_rate.set_function(lambda: budget.budget.bytes_per_s)
        self.metrics.budget_queued.set_function(lambda: budget.budget.queued)

        def changed(parameters: list[Parameter]) -> SetParametersResult:
            for parameter in parameters:
                if parameter.name != BUDGET_PARAMETER:
                    continue
                value = parameter.value
                if not isinstance(value, (int, float)) or value <= 0:
                    return SetParametersResult(successful=False, reason=f"{BUDGET_PARAMETER} must be a number > 0 "
                                               f"(bytes per second), got {value!r}")
                budget.set_rate(float(value))
            return SetParametersResult(successful=True)

        self.node.add_on_set_parameters_callback(changed)

    def _budget_drop(self, stream: str, reason: str, count: int) -> None:
        """A record the budget dropped counts on its route as dropped; it was never made, so never counted as sent
        (received = sent + dropped)."""
        for route in self.routes:
            if route.route.stream == stream:
                route.counts.dropped[reason] += count
                return

    def _encoder(self, route: Route) -> WireEncoder:
        """The route's wire encoder; tells the link what its records are (MQTT 5 properties)."""
        # Kafka records carry a registry id; on MQTT an Avro route registers only with a registry configured (the
        # gateway copies its records under that subject), so a version it forbids is refused before any record leaves
        register = self.registry if route.scheme == "kafka" or self.config.registry else None
        subject = self._subject(route)
        pin = None if route.schema_version is None else self.registry.version(subject, route.schema_version)
        encoder = wire_encoder(route.ros_type, route.format, route.scheme,  # type: ignore[arg-type]
                               subject=subject, register=register, pin=pin)
        if pin is not None:
            log.info("%s: pinned to version %d of %s (id %d)", route, pin.version, subject, pin.id)
        compressed = () if route.compression == "none" else ((COMPRESSION_PROPERTY, route.compression),)
        self.uplink.describe(route.destination, content_type=encoder.content_type,
                             user_properties=(*encoder.user_properties, *compressed), retain=route.retain)
        self._batches[route.destination] = route.format if route.compression == "none" else "compressed"
        return encoder

    def _pack(self, destination: str, payloads: list[bytes]) -> bytes:
        """Records of one destination in one MQTT payload, as its format batches them (JSON: a JSON array).
        A destination no route names yet (spooled by an earlier run; a match route not yet discovered) is
        told by its records, as every reader tells them: JSON records start with `{`."""
        fmt = self._batches.get(destination)
        if fmt == "compressed":  # compressed records are bytes whatever the format: the binary record batch
            return frame_batch(payloads, max_payload=0)
        if fmt is None:
            shapes = {recognise(payload, unwrap=False) for payload in payloads}
            fmt = "json" if shapes == {FORMATS["json"].framings["mqtt"].shape} else "avro"
        return FORMATS[fmt].batch(payloads)

    def _decoder(self, route: Route) -> WireDecoder:
        """The down route's wire decoder: refuses records of another schema (fingerprint or registry id)."""
        return wire_decoder(route.ros_type, route.format, route.scheme,  # type: ignore[arg-type]
                            subject=self._subject(route), lookup=self.registry)

    def _subject(self, route: Route) -> str:
        """The registry subject of the route's records (config `subject_name_strategy`): on MQTT, the one of the
        Kafka topic a gateway's default rules write them to (`fleet.<channel>.<stream>`)."""
        return route_subject(self.config.subject_name_strategy, route.kafka_topic, route.ros_type)

    def stop_tasks(self, spin: Callable[[Callable[[], bool], float], object]) -> None:
        """Before the routes stop: end the tasks carried out through actions (goals cancelled, every task's
        outcome published on ROS for the up route); `spin(done, timeout_s)` runs the node meanwhile."""
        if self.tasks is not None:
            self.tasks.stop(spin)
        if self.vehicle is not None:
            self.vehicle.stop(spin)

    def start_vehicle(self) -> None:
        """Connect the VDA 5050 vehicle (if configured): ONLINE, factsheet and state follow."""
        if self.vehicle is not None:
            self.vehicle.start()

    def flush(self, timeout_s: float) -> int:
        """Wait until every record is acknowledged upstream; returns how many are still waiting."""
        return self.outbox.flush(timeout_s)

    def close(self) -> None:
        """Stop the reader thread (what its readers still hold is taken once more), the down routes (commands still
        waiting for a ROS subscriber are dropped, counted), the outbox (unconfirmed records stay spooled for the next
        start), the spool and the registry."""
        self.reader.close()
        for uplink_route in self.routes:
            uplink_route.sweep()
            uplink_route.close()
        for downlink in self.downlinks:
            downlink.close()
        if self.tasks is not None:
            self.tasks.close()
        if self.vehicle is not None:
            self.vehicle.close()
        if self.budget is not None:
            self.budget.close()
        self.outbox.close()
        self.spool.close()
        self.registry.close()

    def summary(self) -> dict[str, dict[str, int]]:
        """Per route (by its str): received, sent (up) or published (down), dropped (all reasons), how many
        were received by a sweep rather than an executor event (up), held for a ROS subscriber (down); chunks and
        bytes before (encoded) and after compression and chunking (sent), up."""
        up = {str(r.route): {"received": r.counts.received, "sent": r.counts.sent,
                             "dropped": sum(r.counts.dropped.values()), "swept": r.counts.swept, "held": 0,
                             "chunks": r.counts.chunks, "bytes_encoded": r.counts.bytes_encoded,
                             "bytes_sent": r.counts.bytes_sent}
              for r in self.routes}
        down = {str(d.route): {"received": d.counts.received, "sent": d.counts.published,
                               "dropped": sum(d.counts.refused.values()), "swept": 0, "held": d.counts.held,
                               "chunks": 0, "bytes_encoded": 0, "bytes_sent": 0}
                for d in self.downlinks}
        return up | down

    def drops(self) -> dict[str, dict[str, int]]:
        """Per route (by its str) that dropped anything: how many, by reason."""
        up = {str(r.route): dict(r.counts.dropped) for r in self.routes if r.counts.dropped}
        down = {str(d.route): dict(d.counts.refused) for d in self.downlinks if d.counts.refused}
        return up | down

    def _acked(self, record: Outgoing, acked_ns: int) -> None:
        latency = self._latency.get(record.stream)
        if latency is not None:
            latency.observe((acked_ns - record.received_ns) / 1e9)
