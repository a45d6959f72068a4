"""The single-site coordinator on a real Mosquitto: simulated robots at the MQTT level (and two real ROS robots
behind robot bridges); every task ends once, offline robots' and rejected tasks move, bad input is refused
with a reason and counted."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from site_harness import CAPABILITIES, robots_of, site_doc, wait_for

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.commands import generate_key_pair
from swarm_bridge.config import CoordinatorConfig, validate_config
from swarm_bridge.coordinator.core.dispatch import ASSIGN
from swarm_bridge.coordinator.core.tasks import TERMINAL, TaskState
from swarm_bridge.coordinator.site.runner import SiteCoordinator
from swarm_bridge.coordinator.site.wire import SiteTopics
from swarm_bridge.sim.records import SiteRobotRecords
from swarm_bridge.sim.site_fleet import SiteFleet
from swarm_bridge.sim.task_robots import TaskRobot


class Site:
    """A site coordinator and simulated robots on one broker."""

    def __init__(self, broker: Mosquitto, robots: list[TaskRobot], **overrides: Any) -> None:
        self.config = validate_config(site_doc(broker, **overrides), CoordinatorConfig)
        self.coordinator = SiteCoordinator(self.config).start()
        records = SiteRobotRecords(self.coordinator.topics, fmt=self.config.robot_format)
        self.robots = SiteFleet(host=broker.host, port=broker.port, records=records, robots=robots).start()
        wait_for(lambda: self.coordinator.summary()["robots_online"] == len(robots), 10, "every robot online")
        wait_for(lambda: all((seen := self.coordinator.dispatch.fleet.get(r.robot_id)) is not None and seen.kind
                             for r in robots), 10, "every robot's first RobotState")  # presence can come first

    def terminal(self) -> int:
        return sum(t.state in TERMINAL for t in self.coordinator.tasks())

    def close(self) -> None:
        self.robots.stop()
        self.coordinator.stop()


@pytest.fixture()
def site_factory(mosquitto: Mosquitto) -> Iterator[Callable[..., Site]]:
    sites: list[Site] = []

    def make(robots: list[TaskRobot], **overrides: Any) -> Site:
        site = Site(mosquitto, robots, **overrides)
        sites.append(site)
        return site

    yield make
    for site in sites:
        site.close()


@pytest.mark.integration
def test_every_task_ends_once_and_each_is_assigned_once(site_factory: Callable[..., Site]) -> None:
    site = site_factory(robots_of(20))
    kinds = sorted({k for caps in CAPABILITIES.values() for k in caps})
    answers = [site.coordinator.submit({"task_id": f"t{i:03d}", "kind": kinds[i % len(kinds)],
                                        "target": {"x": float(i % 7), "y": float(i % 3)}, "priority": i % 4})
               for i in range(300)]
    assert all(a.accepted and a.state == "queued" and not a.duplicate for a in answers)
    again = site.coordinator.submit({"task_id": "t007", "kind": "fly"})  # same id, other content: the same task
    assert again.accepted and again.duplicate
    wait_for(lambda: site.terminal() == 300, 60, "300 tasks to end")
    tasks = site.coordinator.tasks()
    assert Counter(t.state for t in tasks) == {TaskState.DONE: 300}
    assigns = Counter(r.task_id for r in site.robots.snapshot() if r.action == ASSIGN)
    assert len(assigns) == 300 and set(assigns.values()) == {1}
    assert all(t.attempts == 1 and len(t.history) == 1 for t in tasks)
    by_robot = {r.robot_id: r for r in site.robots.robots.values()}
    assert all(t.request.kind in by_robot[t.robot_id].capabilities for t in tasks)
    summary = site.coordinator.summary()
    assert summary["tasks"]["done"] == 300 and summary["assigned"] == 300 and summary["robots_online"] == 20
    assert summary["events"]["done"] == 300 and summary["dropped"] == {"duplicate submission": 1}
    wait_for(lambda: site.coordinator.summary()["assignment_latency_s"]["count"] == 300, 10, "every PUBACK")
    assert site.coordinator.summary()["assignment_latency_s"]["p99"] is not None


@pytest.mark.integration
def test_a_robot_gone_offline_by_its_last_will_loses_its_tasks_to_another(site_factory: Callable[..., Site]) -> None:
    robots = robots_of(6)  # amr_000, amr_003: the two that navigate
    site = site_factory(robots)
    for robot in site.robots.robots.values():
        robot.work.work_s = 30.0  # nothing finishes before the robot is gone
    for i in range(4):
        assert site.coordinator.submit({"task_id": f"nav{i}", "kind": "navigate", "target": {"x": 0.0}}).accepted
    taken = (TaskState.ACCEPTED, TaskState.RUNNING)
    wait_for(lambda: all((t := site.coordinator.task(f"nav{i}")) is not None and t.state in taken for i in range(4)),
             10, "tasks accepted")
    held = [t.task_id for t in site.coordinator.tasks() if t.robot_id == "amr_000"]
    assert held, "amr_000 (at the target) holds some of the tasks"
    site.robots.robots["amr_003"].work.work_s = 0.05
    site.robots.drop("amr_000")
    wait_for(lambda: all((t := site.coordinator.task(i)) is not None and t.state is TaskState.DONE for i in held), 20,
             "amr_000's tasks done by amr_003")
    for task_id in held:
        task = site.coordinator.task(task_id)
        assert task is not None and task.history == ("amr_000", "amr_003") and task.attempts == 2
        assert task.excluded == ("amr_000",)
    assert site.coordinator.summary()["events"]["requeued"] == len(held)
    gone = site.coordinator.dispatch.fleet.get("amr_000")
    assert gone is not None and not gone.online and gone.presence_reason == "connection lost"  # its Last Will


@pytest.mark.integration
def test_a_reject_moves_the_task_and_bad_input_is_refused_with_a_reason(site_factory: Callable[..., Site],
                                                                         mosquitto: Mosquitto) -> None:
    robots = [TaskRobot("arm_liar", "arm", ["pick", "place"], able=["pick"], x=0.0),  # says it can place; cannot
              TaskRobot("arm_good", "arm", ["pick", "place"], x=50.0)]
    site = site_factory(robots)
    coordinator = site.coordinator
    assert coordinator.submit({"task_id": "p1", "kind": "place", "target": {"x": 0.0}}).accepted
    wait_for(lambda: (t := coordinator.task("p1")) is not None and t.state is TaskState.DONE, 10, "p1 done")
    task = coordinator.task("p1")
    assert task is not None and task.history == ("arm_liar", "arm_good")
    assert task.excluded == ("arm_liar",) and coordinator.summary()["events"]["requeued"] == 1

    unknown = coordinator.submit({"task_id": "x1", "kind": "teleport"})
    assert not unknown.accepted and unknown.state == "rejected"
    assert "kind: unknown capability 'teleport'; the fleet knows: charge, fly" in unknown.reason
    past = coordinator.submit({"task_id": "x2", "kind": "pick", "deadline_ns": time.time_ns() - 5_000_000_000})
    assert not past.accepted and "deadline_ns: deadline already past by" in past.reason
    assert not coordinator.submit(b"{not json").accepted

    # Over MQTT: a request and its answer on the result topic; a malformed record on a robot topic.
    answers: list[dict[str, Any]] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"submitter-{uuid.uuid4().hex[:6]}",
                         protocol=paho.MQTTv5)

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        answers.append(json.loads(message.payload))

    client.on_message = on_message
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    try:
        subscribed = threading.Event()
        client.on_subscribe = lambda *_args: subscribed.set()
        client.subscribe(coordinator.topics.result("+"), qos=1)
        assert subscribed.wait(10)
        client.publish(coordinator.topics.submit, json.dumps({"task_id": "m1", "kind": "warp"}), qos=1)
        client.publish(coordinator.topics.submit, json.dumps({"task_id": "m2", "kind": "pick"}), qos=1)
        wait_for(lambda: len(answers) >= 2, 10, "two answers on the result topic")
    finally:
        client.loop_stop()
        client.disconnect()
    by_id = {a["task_id"]: a for a in answers}
    assert by_id["m1"]["accepted"] is False and "unknown capability 'warp'" in by_id["m1"]["reason"]
    assert by_id["m2"] == {"task_id": "m2", "accepted": True, "state": "queued", "reason": "", "duplicate": False}
    site.robots.publish_raw("arm_good", "event", "task_status", b"\xc3\x01garbage")
    site.robots.publish_raw("arm_good", "state", "robot_state", b"not a record")
    wait_for(lambda: coordinator.summary()["dropped"].get("malformed state") == 1
             and coordinator.summary()["dropped"].get("malformed status") == 1, 10, "malformed records counted")
    wait_for(lambda: (t := coordinator.task("m2")) is not None and t.state is TaskState.DONE, 10, "m2 done after all")
    counts = coordinator.summary()["tasks"]
    assert counts["rejected"] == 4 and counts["done"] == 2


@pytest.mark.integration
def test_commands_are_signed_when_the_config_names_a_key(site_factory: Callable[..., Site], tmp_path: Path) -> None:
    private, _public = generate_key_pair("site-key", tmp_path)
    site = site_factory(robots_of(3), signing_key=str(private), robot_format="json")
    assert site.coordinator.submit({"task_id": "s1", "kind": "fly"}).accepted
    wait_for(lambda: (t := site.coordinator.task("s1")) is not None and t.state is TaskState.DONE, 10, "s1 done")
    assert site.robots.robots["drone_001"].signed == 1
    assert [r.action for r in site.robots.snapshot()] == [ASSIGN]


@pytest.mark.integration
def test_real_ros_robots_behind_their_bridges_finish_the_site_tasks(mosquitto: Mosquitto, tmp_path: Path,
                                                                     ros_env: dict[str, str]) -> None:
    import subprocess
    import sys

    import yaml

    from swarm_bridge.demo.plan import FLEET, DemoRobot, bridge_config

    tag = uuid.uuid4().hex[:4]
    robots = [DemoRobot(f"amr_{tag}", "amr", ("navigate", "pick"), ()),
              DemoRobot(f"drone_{tag}", "drone", ("fly", "inspect"), ())]
    config = validate_config(site_doc(mosquitto, fleet=FLEET), CoordinatorConfig)
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    coordinator = SiteCoordinator(config).start()
    try:
        for robot in robots:
            path = tmp_path / f"{robot.robot_id}.yaml"
            path.write_text(yaml.safe_dump(bridge_config(robot, [], host=mosquitto.host, port=mosquitto.port,
                                                         spool=tmp_path / robot.robot_id / "spool.db",
                                                         registry=str(tmp_path / "registry"))))
            for name, args in (("bridge", ["robot_bridge", "--config", str(path)]),
                               ("executor", ["task_executor", "--robot-id", robot.robot_id, "--kind", robot.kind,
                                             "--capabilities", ",".join(robot.capabilities), "--work-s", "0.2",
                                             "--state-period-s", "0.5"])):
                log_path = tmp_path / f"{robot.robot_id}.{name}.log"
                logs.append(log_path)
                with log_path.open("wb") as out:
                    processes.append(subprocess.Popen([sys.executable, "-m", "swarm_bridge.nodes", *args], env=ros_env,
                                                      stdout=out, stderr=subprocess.STDOUT))
        wait_for(lambda: coordinator.summary()["robots_online"] == 2 or any(p.poll() is not None for p in processes),
                 60, "both ROS robots online")
        assert coordinator.summary()["robots_online"] == 2, "\n".join(p.read_text() for p in logs)
        kinds = ["navigate", "fly", "pick", "inspect", "navigate", "fly"]
        for i, kind in enumerate(kinds):
            assert coordinator.submit({"task_id": f"ros{i}", "kind": kind}).accepted
        wait_for(lambda: sum(t.state in TERMINAL for t in coordinator.tasks()) == len(kinds), 60, "ROS tasks to end")
        tasks = {t.task_id: t for t in coordinator.tasks()}
        assert {t.state for t in tasks.values()} == {TaskState.DONE}
        assert {tasks[f"ros{i}"].robot_id for i, k in enumerate(kinds) if k in ("fly", "inspect")} == {f"drone_{tag}"}
        assert {tasks[f"ros{i}"].robot_id for i, k in enumerate(kinds) if k in ("navigate", "pick")} == {f"amr_{tag}"}
        assert coordinator.summary()["dropped"] == {}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        coordinator.stop()


@pytest.mark.integration
def test_the_cli_runs_the_site_mode_submits_and_shows_the_fleet(mosquitto: Mosquitto, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import signal
    import subprocess
    import sys

    import yaml

    from swarm_bridge.cli import main as cli_main

    doc = site_doc(mosquitto, mqtt={"status_period_s": 0.2, "state_file": str(tmp_path / "tasks.jsonl")})
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = validate_config(doc, CoordinatorConfig)
    log_path = tmp_path / "coordinator.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "swarm_bridge.cli", "coordinator", "--config", str(path)],
                                   stdout=out, stderr=subprocess.STDOUT)
    assert config.mqtt is not None
    records = SiteRobotRecords(SiteTopics(config.mqtt.topic_prefix, config.fleet))
    robots = SiteFleet(host=mosquitto.host, port=mosquitto.port, records=records, robots=robots_of(3)).start()
    try:
        wait_for(lambda: "state in memory" in log_path.read_text() or process.poll() is not None, 30,
                 "the coordinator to start")
        assert process.poll() is None, log_path.read_text()
        assert cli_main(["task", "submit", "--config", str(path), "--task-id", "c1", "--kind", "inspect"]) == 0
        assert "submitted c1: queued" in capsys.readouterr().out
        assert cli_main(["task", "submit", "--config", str(path), "--task-id", "c2", "--kind", "warp"]) == 1
        assert "rejected: task c2: kind: unknown capability 'warp'" in capsys.readouterr().err

        def done() -> bool:
            assert cli_main(["fleet", "status", "--config", str(path), "--json"]) == 0
            status = json.loads(capsys.readouterr().out)
            return bool(status["summary"]["tasks"]["done"] == 1 and len(status["robots"]) == 3)

        wait_for(done, 20, "fleet status to show c1 done")
        assert cli_main(["fleet", "status", "--config", str(path)]) == 0
        assert "robots: 3 (3 online)" in capsys.readouterr().out
    finally:
        robots.stop()
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert process.returncode == 0, log_path.read_text()
    saved = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert {(t["task"]["request"]["task_id"], t["task"]["state"]) for t in saved} == {("c1", "done"),
                                                                                     ("c2", "rejected")}


@pytest.mark.integration
def test_a_restart_reads_the_snapshot_back_and_resubmissions_stay_duplicates(mosquitto: Mosquitto,
                                                                               tmp_path: Path) -> None:
    doc = site_doc(mosquitto, mqtt={"state_file": str(tmp_path / "tasks.jsonl")})
    config = validate_config(doc, CoordinatorConfig)
    with SiteCoordinator(config) as first:  # no robots: the tasks stay queued
        assert first.submit({"task_id": "q1", "kind": "pick", "priority": 7}).accepted
        assert not first.submit({"task_id": "q2", "kind": "warp"}).accepted
    with SiteCoordinator(config) as second:
        tasks = {t.task_id: t for t in second.tasks()}
        assert {i: t.state for i, t in tasks.items()} == {"q1": TaskState.QUEUED, "q2": TaskState.REJECTED}
        assert tasks["q1"].request.priority == 7
        again = second.submit({"task_id": "q1", "kind": "pick"})
        assert again.duplicate and again.state == "queued"
        assert second.summary()["dropped"] == {"duplicate submission": 1}


def test_the_snapshot_is_synced_to_disk_before_and_after_its_rename(mosquitto: Mosquitto, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The state file's content is fsynced before it replaces the old one, and its directory after (so the
    rename survives a power cut): never empty, never an old file after a crash."""
    import os
    import stat

    state = tmp_path / "state" / "tasks.jsonl"
    config = validate_config(site_doc(mosquitto, mqtt={"state_file": str(state)}), CoordinatorConfig)
    synced: list[tuple[int, bool]] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:  # the real fsync, noting what it was given
        info = os.fstat(fd)
        synced.append((info.st_ino, stat.S_ISDIR(info.st_mode)))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    with SiteCoordinator(config) as site:
        assert site.submit({"task_id": "kept-1", "kind": "pick"}).accepted
    the_file, its_dir = (state.stat().st_ino, False), (state.parent.stat().st_ino, True)
    assert the_file in synced and its_dir in synced, synced
    assert synced.index(the_file) < synced.index(its_dir)
    assert [p.name for p in state.parent.iterdir()] == ["tasks.jsonl"]  # no partial file left beside it
    with SiteCoordinator(config) as again:
        assert [t.task_id for t in again.tasks()] == ["kept-1"]
