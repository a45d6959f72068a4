"""`swarm-bridge fleet pause` / `fleet resume` against real parts, in both coordinator modes: a test vehicle
(test/support/vda_vehicles.py, written from the spec) gets a schema-valid instantActions startPause, stops and
reports `paused`, which `fleet status` shows; stopPause and it drives on, its task done. Mode mqtt through the site
coordinator on Mosquitto; mode kafka through the gateway's VDA 5050 rules (Avro on Kafka) and the instance owning the
vehicle's shard. A swarm_bridge robot or an unseen vehicle is refused, named, and counted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from coordinator_fleet import Stepping, TaskLog, coordinator_config, write_config
from gateway_harness import GatewayThread
from site_harness import wait_for
from vda_site import CAPABILITIES, VdaSite, vda_gateway_config, vda_site_fixture  # noqa: F401  (fixture vda_site)
from vda_vehicles import VdaVehicles, VehicleSpec
from vda_wire import SchemaCheck, WireTap

from swarm_bridge.brokers import Kafka, Mosquitto
from swarm_bridge.cli import main as cli_main
from swarm_bridge.coordinator.core.tasks import TaskState
from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
from swarm_bridge.coordinator.kafka.snapshot import pause_vehicle, submit_tasks
from swarm_bridge.sim.task_robots import TaskRobot
from swarm_bridge.transport import ensure_kafka_topics

pytestmark = pytest.mark.integration


def pauses_sent(tap: WireTap) -> list[str]:
    """The startPause/stopPause instant actions on the wire, in order (stateRequests left out)."""
    return [a["actionType"] for _t, doc in tap.on("instantActions") for a in doc["actions"]
            if a["actionType"] in ("startPause", "stopPause")]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `swarm-bridge argv`: exit code, stdout, stderr."""
    capsys.readouterr()
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def status_robot(capsys: pytest.CaptureFixture[str], config: Path, robot_id: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "fleet", "status", "--config", str(config), "--json")
    assert code == 0, err
    return next(r for r in json.loads(out)["robots"] if r["robot_id"] == robot_id)


def test_fleet_pause_and_resume_a_vehicle_of_the_site_coordinator(
        vda_site: Callable[..., VdaSite], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = vda_site([VehicleSpec("acme", "slow", speed_mps=0.5)],
                    [TaskRobot("amr_0", "amr", CAPABILITIES["amr"], x=50.0, y=50.0)], mqtt={"status_period_s": 0.3})
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(site.doc))
    vehicle = site.vehicles["acme/slow"]
    site.submit("far", "pick", 6.0, 0.0)  # pick: only the vehicle can
    wait_for(lambda: site.state_of("far") is TaskState.RUNNING and vehicle.driving, 30, "far running, driving")
    code, out, err = cli(capsys, "fleet", "pause", "--config", str(config), "--robot-id", "acme/slow",
                         "--reason", "person in the aisle")
    assert (code, out.strip()) == (0, "startPause sent to acme/slow; `fleet status` shows it paused once the vehicle "
                                      "reports it"), err
    wait_for(lambda: vehicle.paused and not vehicle.driving, 15, "the vehicle paused")
    wait_for(lambda: status_robot(capsys, config, "acme/slow")["paused"], 15, "fleet status: acme/slow paused")
    code, out, _err = cli(capsys, "fleet", "status", "--config", str(config))
    assert code == 0 and any(line.startswith("acme/slow") and ", paused" in line for line in out.splitlines())
    held_at = vehicle.x
    # refused, named and counted: a swarm_bridge robot, a vehicle never seen
    code, _out, err = cli(capsys, "fleet", "pause", "--config", str(config), "--robot-id", "amr_0")
    assert code == 1 and "refused: amr_0: a swarm_bridge robot, not a VDA 5050 vehicle" in err
    code, _out, err = cli(capsys, "fleet", "pause", "--config", str(config), "--robot-id", "acme/ghost")
    assert code == 1 and "refused: acme/ghost: no VDA 5050 vehicle of this id has reported a state" in err
    assert site.state_of("far") is TaskState.RUNNING and vehicle.paused and vehicle.x == held_at
    code, out, err = cli(capsys, "fleet", "resume", "--config", str(config), "--robot-id", "acme/slow")
    assert (code, out.strip()) == (0, "stopPause sent to acme/slow"), err
    site.wait_state("far", {TaskState.DONE}, 60)
    assert not vehicle.paused
    wait_for(lambda: not status_robot(capsys, config, "acme/slow")["paused"], 15, "fleet status: acme/slow on")
    assert pauses_sent(site.tap) == ["startPause", "stopPause"]
    assert site.check.wire_problems(site.tap.snapshot()) == []
    dropped = site.coordinator.summary()["dropped"]
    assert dropped == {"pause refused: not a vda5050 vehicle": 1, "pause refused: unknown vehicle": 1}


def test_fleet_pause_and_resume_a_vehicle_of_the_kafka_coordinator_through_the_gateway(
        tmp_path: Path, mosquitto: Mosquitto, kafka: Kafka, vda5050_schemas: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    tag = uuid.uuid4().hex[:6]
    interface = f"uagv{tag}"
    config = coordinator_config(kafka, tmp_path, kafka={"instance_id": "solo"}, capabilities={"agv": ["navigate"]},
                                vda5050={"manufacturers": {"acme": "agv"}, "interface_name": interface,
                                         "kafka_topic": f"vda_{tag}.{{stream}}", "schemas": str(vda5050_schemas)})
    assert config.vda5050 is not None and config.vda5050.kafka_format == "avro"  # the default
    coordinator = Stepping(CoordinatorInstance(config))  # makes the vda_{tag}.* topics
    ensure_kafka_topics(kafka.bootstrap, ["fleet.dlq"])
    gateway = GatewayThread(vda_gateway_config(tmp_path / "gw.yaml", tag, interface, mosquitto=mosquitto,
                                               bootstrap=kafka.bootstrap, registry=tmp_path / "registry"))
    tap = WireTap(mosquitto.host, mosquitto.port, interface)
    log = TaskLog(kafka, config)
    vehicles = VdaVehicles([VehicleSpec("acme", "agv1", x=0.0, speed_mps=1.0)], host=mosquitto.host,
                           port=mosquitto.port, interface=interface, state_period_s=0.5).start()
    vehicle = vehicles["acme/agv1"]
    dispatch = coordinator.instance.dispatch
    cli_config = write_config(json.loads(config.model_dump_json()), tmp_path / "coordinator.yaml")

    def state_of(task_id: str) -> TaskState | None:
        event = log.last().get(task_id)
        return None if event is None else event.task.state

    try:
        wait_for(lambda: (seen := dispatch.fleet.get("acme/agv1")) is not None and seen.online and bool(seen.kind),
                 60, "acme/agv1 online with its kind in the coordinator's view")
        assert submit_tasks(config, [{"task_id": "far", "kind": "navigate", "target": {"x": 15.0}}]) == 0
        wait_for(lambda: state_of("far") is TaskState.RUNNING and vehicle.driving, 60, "far running, driving")
        code, out, err = cli(capsys, "fleet", "pause", "--config", str(cli_config), "--robot-id", "acme/agv1",
                             "--reason", "person in the aisle")
        assert code == 0 and out.startswith(f"startPause for acme/agv1 sent to {config.topics.submit}"), err
        wait_for(lambda: vehicle.paused and not vehicle.driving, 60, "the vehicle paused")
        wait_for(lambda: status_robot(capsys, cli_config, "acme/agv1")["paused"], 60, "fleet status: paused")
        code, out, _err = cli(capsys, "fleet", "status", "--config", str(cli_config))
        assert code == 0 and any(line.startswith("acme/agv1") and ", paused" in line for line in out.splitlines())
        code, _out, err = cli(capsys, "fleet", "pause", "--config", str(cli_config), "--robot-id", "acme/ghost")
        assert code == 1 and "refused: acme/ghost: no VDA 5050 vehicle of this id has reported a state" in err
        # the coordinator refuses it too when asked past the CLI's check: named in its log, counted
        assert pause_vehicle(config, "acme/ghost", True) == 0
        wait_for(lambda: dispatch.counts["pause refused: unknown vehicle"] == 1, 60, "the refusal counted")
        assert state_of("far") is TaskState.RUNNING and vehicle.paused
        code, out, err = cli(capsys, "fleet", "resume", "--config", str(cli_config), "--robot-id", "acme/agv1")
        assert code == 0 and out.startswith("stopPause for acme/agv1"), err
        wait_for(lambda: state_of("far") is TaskState.DONE, 90, "far done after the resume")
        assert not vehicle.paused
        wait_for(lambda: not status_robot(capsys, cli_config, "acme/agv1")["paused"], 60, "fleet status: on")
        wire = tap.snapshot()
    finally:
        vehicles.stop()
        log.close()
        tap.close()
        gateway.close()
        coordinator.close()
    assert coordinator.error is None
    assert pauses_sent(tap) == ["startPause", "stopPause"]
    assert SchemaCheck(vda5050_schemas).wire_problems(wire) == []
    assert vehicle.x == pytest.approx(15.0, abs=0.5)
