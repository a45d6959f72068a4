"""The schema registry as the robot bridge, gateway and coordinator use it, against a real Confluent-API registry
(Apicurio, started here) and real Kafka: one registry client per process, closed at stop; the subject naming
strategy chosen by the config key `subject_name_strategy`, the same in all three."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import rclpy
from fault_proxy import FaultProxy

from swarm_bridge.brokers import Kafka, free_port
from swarm_bridge.brokers.registry import SchemaRegistryServer
from swarm_bridge.codec import ConfluentRegistry, avro_fingerprint
from swarm_bridge.codec.avro import avro_schema
from swarm_bridge.codec.registry import SUBJECT_NAME_STRATEGIES
from swarm_bridge.config import CoordinatorConfig, GatewayConfig, RobotBridgeConfig, validate_config
from swarm_bridge.config.common import SubjectNameStrategyName
from swarm_bridge.ros import RobotBridge
from swarm_bridge.spool import Spool
from swarm_bridge.transport import open_uplink

pytestmark = pytest.mark.integration

TASK_STATUS = "swarm_bridge_msgs/msg/TaskStatus"
TASK_COMMAND = "swarm_bridge_msgs/msg/TaskCommand"
ROBOT_STATE = "swarm_bridge_msgs/msg/RobotState"
ODOMETRY = "nav_msgs/msg/Odometry"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    """A private Apicurio Registry for this module, stopped at the end."""
    registry = SchemaRegistryServer(run_dir=tmp_path_factory.mktemp("schema-registry"), port=free_port())
    registry.start()
    yield registry
    registry.stop()


def _subjects(server: SchemaRegistryServer) -> set[str]:
    with ConfluentRegistry(server.url, timeout_s=10) as remote:
        return set(remote.subjects())


def _connections_to(port: int) -> int:
    """Established TCP connections from this process to 127.0.0.1:`port` (read from /proc, no extra package)."""
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == port and fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                count += 1
    return count


def _robot_config(tmp_path: Path, kafka: Kafka, server: SchemaRegistryServer, robot_id: str,
                  **extra: Any) -> RobotBridgeConfig:
    extra.setdefault("registry", server.url)
    route = {"direction": "up", "qos": "reliable", "format": "avro"}
    return validate_config({
        "robot_id": robot_id, "fleet": "registry_test",
        "uplink": {"kind": "kafka", "port": kafka.port, "require_at_start": False},
        "spool": {"path": str(tmp_path / f"{robot_id}.db")},
        "routes": [
            {**route, "topic": f"/{robot_id}/odom", "type": ODOMETRY, "channel": "telemetry", "stream": "odometry"},
            {**route, "topic": f"/{robot_id}/state", "type": ROBOT_STATE, "channel": "state", "stream": "robot_state"},
            {**route, "topic": f"/{robot_id}/status", "type": TASK_STATUS, "channel": "event",
             "stream": "task_status"},
            {**route, "topic": f"/{robot_id}/command", "type": TASK_COMMAND, "channel": "command",
             "stream": "task_command", "direction": "down"},
        ],
        **extra,
    }, RobotBridgeConfig)


def _start_bridge(config: RobotBridgeConfig, ros_context: Any, tmp_path: Path) -> tuple[RobotBridge, Any, Any]:
    uplink = open_uplink(config)
    node = rclpy.create_node(f"bridge_{config.robot_id}", context=ros_context)
    spool = Spool(tmp_path / f"{config.robot_id}.spool.db", max_bytes=1 << 20)
    return RobotBridge(node, config, uplink, spool=spool), uplink, node


def test_robot_bridge_holds_one_registry_client_and_closes_it_at_stop(
        tmp_path: Path, kafka: Kafka, server: SchemaRegistryServer, ros_context: Any) -> None:
    # the registry behind a counting proxy: every HTTP client opens a connection of its own
    proxy = FaultProxy(server.port)
    try:
        config = _robot_config(tmp_path, kafka, server, "amr_once",
                               registry=server.url.replace(f":{server.port}/", f":{proxy.port}/"))
        bridge, uplink, node = _start_bridge(config, ros_context, tmp_path)
        try:
            # four Avro routes on Kafka registered or looked up their schemas through one kept-alive client
            assert proxy.counts["accepted"] == 1
            assert _connections_to(proxy.port) == 1
        finally:
            bridge.close()
            uplink.close()
            node.destroy_node()
        assert _connections_to(proxy.port) == 0  # closed at stop, not left to the garbage collector
    finally:
        proxy.close()


def test_the_config_key_names_the_strategies_of_the_codec() -> None:
    assert set(get_args(get_args(SubjectNameStrategyName)[0])) == set(SUBJECT_NAME_STRATEGIES)
    for model in (RobotBridgeConfig, GatewayConfig, CoordinatorConfig):
        assert model.model_fields["subject_name_strategy"].default == "topic_name"


@pytest.mark.parametrize("strategy", ["record_name", "topic_record_name"])
def test_bridge_gateway_and_coordinator_name_subjects_by_the_config_key(
        strategy: str, tmp_path: Path, kafka: Kafka, server: SchemaRegistryServer, ros_context: Any) -> None:
    from swarm_bridge.coordinator.kafka.runner import CoordinatorInstance
    from swarm_bridge.gateway.service import Gateway

    robot_id = f"amr_{strategy}"
    expected = {
        "record_name": {f"swarm_bridge.record.{t.replace('/', '.')}" for t in (ODOMETRY, ROBOT_STATE, TASK_STATUS,
                                                                              TASK_COMMAND)},
        "topic_record_name": {f"{topic}-swarm_bridge.record.{t.replace('/', '.')}" for topic, t in (
            ("fleet.telemetry.odometry", ODOMETRY), ("fleet.state.robot_state", ROBOT_STATE),
            ("fleet.event.task_status", TASK_STATUS), ("fleet.command.task_command", TASK_COMMAND))},
    }[strategy]
    before = _subjects(server)

    # the robot bridge registers its Kafka routes' schemas under the strategy's subjects
    bridge, uplink, node = _start_bridge(
        _robot_config(tmp_path, kafka, server, robot_id, subject_name_strategy=strategy), ros_context, tmp_path)
    bridge.close()
    uplink.close()
    node.destroy_node()
    assert _subjects(server) - before == expected

    # the coordinator names its subjects the same way (topics of its own: other tests shard the fleet.* ones)
    topics = {name: f"registry_test.{strategy}.{name}" for name in ("submit", "state", "status", "presence",
                                                                       "commands", "events")}
    coordinator = validate_config({
        "fleet": "registry_test", "shards": 2, "kafka": {"host": "127.0.0.1", "port": kafka.port,
                                                         "group": f"registry_test_{strategy}"},
        "topics": topics, "registry": server.url, "subject_name_strategy": strategy,
        "capabilities": {"amr": ["navigate"]},
    }, CoordinatorConfig)
    instance = CoordinatorInstance(coordinator)
    instance.close()
    assert _connections_to(server.port) == 0  # its one registry client closed with it
    by_coordinator = {SUBJECT_NAME_STRATEGIES[strategy](topics[name], f"swarm_bridge.record.{t.replace('/', '.')}")
                      for name, t in (("state", ROBOT_STATE), ("status", TASK_STATUS), ("commands", TASK_COMMAND))}
    assert _subjects(server) - before == expected | by_coordinator
    if strategy == "record_name":
        assert by_coordinator <= expected  # one history per type, whichever process or topic

    # the gateway registers an MQTT robot's single-object record under the same subject as the Kafka robot's
    gateway = Gateway(validate_config({"gateway_id": f"gw_{strategy}", "fleet": "registry_test",
                                       "registry": server.url, "subject_name_strategy": strategy}, GatewayConfig))
    try:
        schema = avro_schema(ODOMETRY)
        schema_id = gateway.schemas.kafka_id("fleet.telemetry.odometry", avro_fingerprint(schema), ODOMETRY)
    finally:
        gateway.close()
    assert _connections_to(server.port) == 0
    assert _subjects(server) - before == expected | by_coordinator
    with ConfluentRegistry(server.url, timeout_s=10) as remote:
        subject = next(s for s in expected if s.endswith("nav_msgs.msg.Odometry"))
        assert remote.latest(subject).id == schema_id
