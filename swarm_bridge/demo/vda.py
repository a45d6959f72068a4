"""The demo's VDA 5050 side: a tap on every VDA 5050 topic of the broker that counts the messages per vehicle and
topic (order, instantActions from the coordinator; state, connection, factsheet, visualization from the vehicles),
checks each against the official JSON Schemas when the demo has them, and gives the report's figures."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from swarm_bridge.demo.plan import VDA_SIMS, DemoVehicle
from swarm_bridge.sim.taps import MqttTap
from swarm_bridge.vda5050 import TOPICS, OfficialSchemas, Vda5050Topics

__all__ = ["VdaTally", "VdaWire", "vda_figures"]

SHOWN_PROBLEMS = 10  # schema violations listed in the report (all are counted)


class VdaTally:
    """VDA 5050 messages counted per (vehicle, topic), arrival times per topic (for the plot), orderIds per
    vehicle, the last connectionState, schema violations (pure: `VdaWire` feeds it from the broker)."""

    def __init__(self, topics: Vda5050Topics, schemas: OfficialSchemas | None) -> None:
        self.topics, self.schemas = topics, schemas
        self.counts: dict[str, Counter[str]] = {}  # robot id -> topic -> messages
        self.arrivals: dict[str, list[int]] = {}  # topic -> arrival ns of each message
        self.orders: dict[str, list[str]] = {}  # robot id -> orderIds sent to it, in order, each once
        self.connection: dict[str, str] = {}  # robot id -> the last connectionState
        self.invalid = 0
        self.problems: list[str] = []
        self.unreadable = 0  # topics under the interface that name no vehicle or topic

    def count(self, topic: str, payload: bytes, arrived_ns: int) -> None:
        """One message as it arrived on `topic`."""
        parsed = self.topics.parse(topic)
        if parsed is None:
            self.unreadable += 1
            return
        vehicle, name = parsed
        if not payload:  # a retained message cleared
            return
        robot_id = vehicle.robot_id
        self.counts.setdefault(robot_id, Counter())[name] += 1
        self.arrivals.setdefault(name, []).append(arrived_ns)
        try:
            doc = json.loads(payload)
        except ValueError as exc:
            self._invalid(f"{topic}: not JSON ({exc})")
            return
        if self.schemas is not None:
            for problem in self.schemas.problems(name, doc):
                self._invalid(f"{topic}: {problem}")
        if not isinstance(doc, dict):
            return
        if name == "order" and isinstance(order_id := doc.get("orderId"), str):
            seen = self.orders.setdefault(robot_id, [])
            if order_id not in seen:
                seen.append(order_id)
        elif name == "connection" and isinstance(state := doc.get("connectionState"), str):
            self.connection[robot_id] = state

    def _invalid(self, problem: str) -> None:
        self.invalid += 1
        if len(self.problems) < SHOWN_PROBLEMS:
            self.problems.append(problem)



class VdaWire:
    """A tap on every topic under `interface/major_version/` while the demo runs, counted into `tally`."""

    def __init__(self, *, host: str, port: int, topics: Vda5050Topics, schemas: OfficialSchemas | None) -> None:
        self.tally = VdaTally(topics, schemas)
        self._lock = threading.Lock()
        self._tap = MqttTap(host=host, port=port, split=False,
                            patterns=[f"{topics.interface_name}/{topics.major_version}/#"])

    def collect(self) -> VdaTally:
        """Count what arrived since the last call; the tally."""
        with self._lock:
            for record in self._tap.drain():
                self.tally.count(record.topic, record.payload, record.arrived_ns)
        return self.tally

    def close(self) -> None:
        self._tap.close()


def vda_figures(tally: VdaTally, vehicles: Sequence[DemoVehicle], traces: Iterable[Mapping[str, Any]],
                schemas: str | None) -> dict[str, Any]:
    """The report's VDA 5050 section: per vehicle its kind, how it is simulated, its last connectionState, the
    orders sent to it, its tasks by state and its messages by topic; totals per topic; schema violations."""
    by_robot: dict[str, Counter[str]] = {}
    for trace in traces:
        by_robot.setdefault(str(trace["robot_id"]), Counter())[str(trace["state"])] += 1
    rows = []
    for vehicle in vehicles:
        counts = tally.counts.get(vehicle.robot_id, Counter())
        rows.append({"robot_id": vehicle.robot_id, "kind": vehicle.kind, "sim": vehicle.sim,
                     "simulated_as": VDA_SIMS[vehicle.sim],
                     "connection": tally.connection.get(vehicle.robot_id, "never seen"),
                     "orders": len(tally.orders.get(vehicle.robot_id, [])),
                     "tasks": dict(sorted(by_robot.get(vehicle.robot_id, Counter()).items())),
                     "messages": {name: counts.get(name, 0) for name in TOPICS}})
    ours = {v.robot_id for v in vehicles}
    return {
        "interface": f"{tally.topics.interface_name}/{tally.topics.major_version}",
        "schemas": schemas,
        "vehicles": rows,
        "messages": {name: sum(c.get(name, 0) for c in tally.counts.values()) for name in TOPICS},
        "other_vehicles": {robot_id: sum(c.values()) for robot_id, c in sorted(tally.counts.items())
                           if robot_id not in ours},
        "invalid": tally.invalid,
        "problems": list(tally.problems),
    }
