"""The demo's plain VDA 5050 vehicles (swarm_bridge/sim/vda_fleet.py) against a master control written from the
specification (test/support/vda_master.py, paho) on a real Mosquitto: orders driven node by node with their
actions, pause, a malformed order rejected, presence with ONLINE and OFFLINE; every message schema-checked."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest
from vda_master import Master, action_state, errors_of, node, path
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.sim.vda_fleet import SimVehicle, VdaFleet


@pytest.mark.integration
def test_a_simulated_plain_vehicle_follows_a_spec_master_control(mosquitto: Mosquitto,
                                                                vda5050_schemas: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    interface = f"uagv{tag}"  # the session's broker is shared: retained messages stay apart
    tap = WireTap(mosquitto.host, mosquitto.port, interface)
    master = Master(mosquitto.host, mosquitto.port, "acme", f"sim-{tag}", interface=interface)
    vehicle = SimVehicle("acme", f"sim-{tag}", ("lift",))
    fleet = VdaFleet([vehicle], host=mosquitto.host, port=mosquitto.port, interface=interface, speed_mps=2.0,
                     action_s=0.5, state_period_s=1.0).start()
    try:
        master.wait_connection("ONLINE")
        master.wait_state(lambda s: s.get("agvPosition") is not None, "a position")
        # the factsheet came before that state, from the same client
        listed = {a["actionType"] for a in master.factsheets[-1]["protocolFeatures"]["agvActions"]}
        assert {"lift", "cancelOrder", "startPause", "stopPause"} <= listed

        # an order of three nodes, a lift at the last: driven node by node, the action run, all done
        lift = {"actionType": "lift", "actionId": "lift-1", "blockingType": "HARD", "actionParameters": []}
        nodes, edges = path([node("n0", 0, 0.0, 0.0), node("n1", 2, 1.0, 0.0),
                             node("n2", 4, 1.0, 1.0, actions=[lift])])
        master.order("o1", 0, nodes, edges)
        done = master.wait_state(lambda s: s["orderId"] == "o1" and not s["nodeStates"]
                                 and action_state(s, "lift-1") == "FINISHED", "order o1 done")
        assert (done["lastNodeId"], done["lastNodeSequenceId"]) == ("n2", 4) and not done["edgeStates"]
        where = done["agvPosition"]
        assert math.hypot(where["x"] - 1.0, where["y"] - 1.0) < 1e-6

        # a long drive paused on the way: it stops where it is, and goes on after stopPause
        nodes, edges = path([node("n2", 0, 1.0, 1.0), node("far", 2, 9.0, 1.0)])
        master.order("o2", 0, nodes, edges)
        master.wait_state(lambda s: s["orderId"] == "o2" and s["driving"], "driving to far")
        master.instant("startPause", "pause-1")
        paused = master.wait_state(lambda s: bool(s.get("paused")) and action_state(s, "pause-1") == "FINISHED"
                                   and not s["driving"], "paused")
        assert [n["nodeId"] for n in paused["nodeStates"]] == ["far"]
        master.instant("stopPause", "resume-1")
        master.wait_state(lambda s: s["orderId"] == "o2" and not s["nodeStates"] and not s.get("paused"),
                          "order o2 done after the pause")

        # a malformed order: rejected with an error in state, counted, the vehicle goes on
        master.send_raw("order", b"{not json")
        master.wait_state(lambda s: bool(errors_of(s, "validationError")), "a validationError")
        assert vehicle.dropped["malformed order"] == 1
    finally:
        fleet.stop()
        master.wait_connection("OFFLINE")
        master.close()
        tap.close()
    wire = tap.snapshot()
    assert {t.rsplit("/", 1)[-1] for t, *_ in wire} >= {"order", "instantActions", "state", "connection",
                                                       "factsheet", "visualization"}
    assert SchemaCheck(vda5050_schemas).wire_problems([m for m in wire if m[1] != b"{not json"]) == []
