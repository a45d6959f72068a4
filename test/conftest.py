"""Session fixtures: a real Mosquitto and a real Kafka on free ports, and rclpy isolated by domain id; and the
integration marker, given by the folder (test/integration/, test/faults/)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from fault_proxy import FaultProxy

from swarm_bridge.brokers import Kafka, KafkaCluster, Mosquitto, free_port, lease_domain

REPO = Path(__file__).resolve().parents[1]
# Tests under these folders use real brokers, rclpy or processes: marked integration whatever their decorators say.
INTEGRATION_DIRS = ("integration", "faults")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under test/integration/ and test/faults/ as integration (`make unit` runs test/unit/)."""
    here = Path(__file__).resolve().parent
    for item in items:
        path = item.path.resolve()
        if path.is_relative_to(here) and path.relative_to(here).parts[0] in INTEGRATION_DIRS:
            item.add_marker(pytest.mark.integration)


Broker = TypeVar("Broker", Mosquitto, Kafka)


def _session_broker(broker: Broker) -> Iterator[Broker]:
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A private Mosquitto for the whole session, stopped at the end."""
    yield from _session_broker(Mosquitto(run_dir=tmp_path_factory.mktemp("mosquitto"), port=free_port()))


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    """A private single-node Kafka (KRaft) for the whole session, stopped at the end."""
    yield from _session_broker(Kafka(run_dir=tmp_path_factory.mktemp("kafka"), port=free_port()))


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Three real Kafka nodes (KRaft, each broker and controller, 384 MB heap each) on loopback for one test
    module: topics the services make get 3 replicas, 2 in sync, and so do Kafka's own. A test may kill a node
    (`kafka_cluster.node(n).kill()`) and start it again on its data (`.start()`); the module's cluster is its own."""
    with KafkaCluster(run_dir=tmp_path_factory.mktemp("kafka-cluster"), size=3, heap="384m") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ros_domain_id() -> Iterator[int]:
    """A ROS_DOMAIN_ID leased by this test process (and xdist worker) for the session: no other session or
    benchmark on this machine holds it, so none hears our topics (a pid-based pick collided one in a hundred)."""
    with lease_domain() as lease:
        yield lease.domain


@pytest.fixture()
def ros_context(ros_domain_id: int) -> Iterator[object]:
    """An rclpy context of its own on this session's domain, discovery limited to localhost."""
    from swarm_bridge.demo import ros_context as make_context

    with make_context(ros_domain_id) as context:
        yield context


@pytest.fixture()
def ros_env(ros_domain_id: int) -> dict[str, str]:
    """Environment for a ROS subprocess on this session's domain."""
    return {**os.environ, "ROS_DOMAIN_ID": str(ros_domain_id), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


@pytest.fixture(scope="session")
def shared_bags() -> Path:
    """The shared real bags: $SWARM_BRIDGE_BAGS (relative to the repository root), else ../shared/data/bags.
    Fails (never skips) when they are missing: CI has them."""
    value = os.environ.get("SWARM_BRIDGE_BAGS")
    path = REPO / value if value else REPO.parent / "shared" / "data" / "bags"
    if not (path / "README.md").is_file():
        pytest.fail(f"shared bags not found: {path} has no README.md. Set SWARM_BRIDGE_BAGS to the folder of the "
                    "shared bags (default ../shared/data/bags beside the repository)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def vda5050_schemas() -> Path:
    """The official VDA 5050 2.1 JSON Schemas (json_schemas/ of the spec's release): $SWARM_BRIDGE_VDA5050 (the
    folder holding json_schemas/, relative to the repository root), else ../shared/data/vda5050. Fails (never
    skips) when they are missing: CI has them."""
    value = os.environ.get("SWARM_BRIDGE_VDA5050")
    path = (REPO / value if value else REPO.parent / "shared" / "data" / "vda5050") / "json_schemas"
    if not (path / "state.schema").is_file():
        pytest.fail(f"VDA 5050 JSON Schemas not found: {path} has no state.schema. Set SWARM_BRIDGE_VDA5050 to the "
                    "folder holding json_schemas/ (default ../shared/data/vda5050 beside the repository)",
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def proxied_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kafka, FaultProxy]]:
    """A Kafka whose advertised listener is a fault proxy in front of its real one, so every connection a client
    makes after bootstrap goes through the proxy (a bootstrap-only proxy would be bypassed)."""
    port = free_port()
    proxy = FaultProxy(port)
    broker = Kafka(run_dir=tmp_path_factory.mktemp("proxied-kafka"), port=port, advertised_port=proxy.port)
    try:
        broker.start()
        yield broker, proxy
    finally:
        proxy.close()
        broker.stop()


@pytest.fixture(scope="session")
def ros2_launch() -> Path:
    """`ros2` (launch, run, pkg, topic) in this venv, installed once by install-ros2-launch from
    $SWARM_BRIDGE_TOOLS (relative to the repository root), else ../shared/tools beside it. Idempotent and locked
    (parallel workers share the venv); fails (never skips) when the tool is missing: CI has it."""
    value = os.environ.get("SWARM_BRIDGE_TOOLS")
    tool = (REPO / value if value else REPO.parent / "shared" / "tools") / "install-ros2-launch"
    if not tool.is_file():
        pytest.fail(f"{tool} not found. Set SWARM_BRIDGE_TOOLS to the folder holding install-ros2-launch "
                    "(default ../shared/tools beside the repository)", pytrace=False)
    venv = Path(sys.prefix)
    with (venv / ".ros2_launch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run([str(tool), str(venv)], capture_output=True, text=True, timeout=1500)
    if result.returncode != 0:
        pytest.fail(f"{tool} {venv} failed (exit {result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}",
                    pytrace=False)
    return venv / "bin" / "ros2"
