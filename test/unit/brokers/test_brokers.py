"""Local brokers without a broker running: their errors, a stale pidfile, and the CLI (real runs:
integration/brokers/test_brokers.py)."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm_bridge.brokers import BrokerError, Kafka, KafkaCluster, Mosquitto, free_port
from swarm_bridge.brokers.errors import BrokerSettingError
from swarm_bridge.brokers.process import service_status, stop_service
from swarm_bridge.cli import broker as broker_cli


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port held by a listening socket of this test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


# --- Mosquitto -----------------------------------------------------------------------------------


def test_mosquitto_leaves_the_in_flight_window_to_each_clients_receive_maximum(tmp_path: Path) -> None:
    """Mosquitto caps the unacked QoS 1 it sends an MQTT 5 client at max_inflight_messages whatever Receive
    Maximum the client asked for (default 20): the tooling's config and the shipped one both set MQTT's largest."""
    from swarm_bridge.brokers.mosquitto import MAX_INFLIGHT_MESSAGES

    assert MAX_INFLIGHT_MESSAGES == 65535
    written = Mosquitto(run_dir=tmp_path / "m", port=free_port())._config(tmp_path / "data").splitlines()
    shipped = (Path(__file__).resolve().parents[3] / "docker/mosquitto/mosquitto.conf").read_text().splitlines()
    for lines in (written, shipped):
        assert [line for line in lines if line.startswith("max_inflight_messages")] == ["max_inflight_messages 65535"]


def test_mosquitto_unix_socket_is_its_last_listener_and_a_too_long_path_is_refused(tmp_path: Path) -> None:
    written = Mosquitto(run_dir=tmp_path / "m", port=free_port(), unix_socket=Path("/tmp/sb/mqtt.sock"))._config(
        tmp_path / "data").splitlines()
    assert [line for line in written if line][-1] == "listener 0 /tmp/sb/mqtt.sock"  # nothing after binds to it
    with pytest.raises(BrokerSettingError, match="longer than the 107 bytes"):
        Mosquitto(run_dir=tmp_path, port=free_port(), unix_socket=Path("/tmp/" + "s" * 120))


def test_mosquitto_refuses_a_taken_port_before_spawning(tmp_path: Path, taken_port: int) -> None:
    broker = Mosquitto(run_dir=tmp_path, port=taken_port)
    with pytest.raises(BrokerError, match=f"port {taken_port} on 127.0.0.1 is already in use") as caught:
        broker.start()
    assert caught.value.service == "mosquitto"
    assert "--mqtt-port" in caught.value.fix
    assert not (tmp_path / "mosquitto.pid").exists()
    assert not (tmp_path / "mosquitto.log").exists()


def test_mosquitto_missing_binary_names_it_and_the_fix(tmp_path: Path) -> None:
    broker = Mosquitto(run_dir=tmp_path, port=free_port(), binary="/nonexistent/mosquitto")
    with pytest.raises(BrokerError) as caught:
        broker.start()
    assert "/nonexistent/mosquitto" in str(caught.value)
    assert "apt-get install mosquitto" in caught.value.fix


# --- ServiceProcess --------------------------------------------------------------------------------


def test_a_stale_pidfile_reads_as_stopped(tmp_path: Path) -> None:
    (tmp_path / "ghost.pid").write_text(f"{os.getpid()}\n")  # alive, but not started from tmp_path
    assert str(service_status(tmp_path, "ghost")) == "ghost: stopped"
    assert not stop_service(tmp_path, "ghost").running
    assert not (tmp_path / "ghost.pid").exists()


def test_a_pidfile_naming_a_process_without_argv_reads_as_stopped(tmp_path: Path) -> None:
    """A just-spawned service has an empty argv for a moment (read again); one that stays empty (here kthreadd, a
    kernel thread: what a reused pid may name) is not the service."""
    assert Path("/proc/2/cmdline").read_bytes() == b""
    (tmp_path / "kernel.pid").write_text("2\n")
    assert not service_status(tmp_path, "kernel").running


# --- Kafka -----------------------------------------------------------------------------------------


def test_kafka_refuses_a_taken_port_before_spawning(tmp_path: Path, taken_port: int) -> None:
    broker = Kafka(run_dir=tmp_path, port=free_port(), controller_port=taken_port)
    with pytest.raises(BrokerError, match=f"port {taken_port} on 127.0.0.1 is already in use") as caught:
        broker.start()
    assert "--kafka-controller-port" in caught.value.fix
    assert not (tmp_path / "kafka.pid").exists()


def test_kafka_missing_java_says_to_install_a_jdk(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "kafka_2.13-4.1.1.jar").touch()
    broker = Kafka(run_dir=tmp_path / "run", port=free_port(), libs_dir=libs, java="/nonexistent/java")
    with pytest.raises(BrokerError, match="/nonexistent/java") as caught:
        broker.start()
    assert "JDK 17" in caught.value.fix


def test_kafka_empty_libs_dir_says_where_jars_come_from(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    broker = Kafka(run_dir=tmp_path / "run", port=free_port(), libs_dir=libs)
    with pytest.raises(BrokerError, match=f"Kafka jars not found in {libs}") as caught:
        broker.start()
    assert "SWARM_BRIDGE_KAFKA_LIBS" in caught.value.fix


def _settings(node: Kafka) -> dict[str, str]:
    lines = node._server_config().splitlines()[1:]
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize(("nodes", "replicas", "insync"), [(1, "1", "1"), (2, "2", "1"), (3, "3", "2"), (5, "3", "2")])
def test_kafkas_own_topics_are_replicated_as_the_cluster_allows(tmp_path: Path, nodes: int, replicas: str,
                                                                 insync: str) -> None:
    """Group offsets, transaction state and auto-created topics get what the services' topics get: a lone node
    1/1, three nodes or more 3 replicas with 2 in sync (a node may die without losing or stopping them)."""
    quorum = {n: 20000 + n for n in range(1, nodes + 1)}
    settings = _settings(Kafka(run_dir=tmp_path, port=19092, controller_port=quorum[1], quorum=quorum))
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "share.coordinator.state.topic.replication.factor", "default.replication.factor"):
        assert settings[key] == replicas, key
    for key in ("transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr", "min.insync.replicas"):
        assert settings[key] == insync, key
    assert settings["controller.quorum.voters"].count("@") == nodes


def test_given_settings_are_written_over_the_projects_own(tmp_path: Path) -> None:
    """A benchmark tries a broker setting: given keys replace the project's and new ones are added."""
    settings = _settings(Kafka(run_dir=tmp_path, port=19092, settings={
        "num.partitions": "3", "transaction.partition.verification.enable": "false"}))
    assert (settings["num.partitions"], settings["transaction.partition.verification.enable"]) == ("3", "false")
    assert settings["auto.create.topics.enable"] == "true"


def test_a_cluster_on_a_taken_port_refuses_before_any_node_starts(tmp_path: Path, taken_port: int) -> None:
    cluster = KafkaCluster(run_dir=tmp_path, size=3, port=taken_port)
    assert [node.port for node in cluster.nodes] == [taken_port, taken_port + 1, taken_port + 2]
    with pytest.raises(BrokerError, match=f"port {taken_port} on 127.0.0.1 is already in use") as caught:
        cluster.start()
    assert "--kafka-port: a cluster's nodes take it and the 2 after it" in caught.value.fix
    assert not list(tmp_path.rglob("*.pid")) and not list(tmp_path.rglob("*.log"))


def test_a_cluster_restarted_on_its_run_dir_keeps_its_cluster_id(tmp_path: Path) -> None:
    data = tmp_path / "node-2" / "kafka-data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("version=1\ncluster.id=AbCdEfGhIjKlMnOpQrStUv\nnode.id=2\n")
    cluster = KafkaCluster(run_dir=tmp_path, size=3)
    assert {node.cluster_id for node in cluster.nodes} == {"AbCdEfGhIjKlMnOpQrStUv"}
    assert len({node.port for node in cluster.nodes} | {node.controller_port for node in cluster.nodes}) == 6
    assert cluster.node(3).node_id == 3
    with pytest.raises(ValueError, match="no node 4"):
        cluster.node(4)


def test_broker_error_reads_service_problem_fix() -> None:
    error = BrokerError("kafka", "cannot start: port 9092 on 127.0.0.1 is already in use", "choose another")
    assert str(error) == "kafka: cannot start: port 9092 on 127.0.0.1 is already in use. Fix: choose another"
    assert str(BrokerError("x", "p", "f", "line 1\nline 2")).endswith("\nline 1\nline 2")


# --- CLI -------------------------------------------------------------------------------------------


def test_cli_start_on_a_taken_port_exits_2_without_traceback(
    tmp_path: Path, taken_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="swarm-bridge")
    broker_cli.register(parser.add_subparsers(required=True))
    args = parser.parse_args(
        ["broker", "start", "mosquitto", "--run-dir", str(tmp_path), "--mqtt-port", str(taken_port)]
    )
    assert args.run(args) == 2
    err = capsys.readouterr().err
    assert f"mosquitto: cannot start: port {taken_port}" in err
    assert "Traceback" not in err


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="swarm-bridge")
    broker_cli.register(parser.add_subparsers(required=True))
    return parser.parse_args(["broker", *argv])


def test_cli_kafka_brokers_lays_the_nodes_on_ports_next_to_the_first(tmp_path: Path) -> None:
    """`--kafka-brokers 3`: client ports from --kafka-port, controller ports right after them."""
    cluster = broker_cli._build("kafka", _parse("start", "kafka", "--kafka-brokers", "3", "--kafka-port", "19092",
                                                "--run-dir", str(tmp_path)))
    assert isinstance(cluster, KafkaCluster)
    assert cluster.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert [node.controller_port for node in cluster.nodes] == [19095, 19096, 19097]
    assert cluster.run_dir == (tmp_path / "kafka-cluster").resolve()
    single = broker_cli._build("kafka", _parse("start", "kafka", "--run-dir", str(tmp_path)))
    assert isinstance(single, Kafka) and (single.port, single.controller_port) == (9092, 9093)


def test_cli_mqtt_socket_gives_mosquitto_a_unix_listener(tmp_path: Path) -> None:
    broker = broker_cli._build("mosquitto", _parse("start", "mosquitto", "--mqtt-socket", "/tmp/sb-x/mqtt.sock",
                                                   "--run-dir", str(tmp_path)))
    assert isinstance(broker, Mosquitto) and broker.unix_socket == Path("/tmp/sb-x/mqtt.sock")
    assert "listener 0 /tmp/sb-x/mqtt.sock" in broker._config(tmp_path / "data")


def test_cli_kafka_brokers_below_one_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("start", "kafka", "--kafka-brokers", "0", "--run-dir", str(tmp_path))
    assert args.run(args) == 2
    err = capsys.readouterr().err
    assert "--kafka-brokers must be >= 1 (got 0)" in err and "Traceback" not in err


def test_cli_status_lists_each_node_of_a_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for node in (1, 2, 3):
        (tmp_path / "kafka-cluster" / f"node-{node}").mkdir(parents=True)
    args = _parse("status", "--run-dir", str(tmp_path))
    assert args.run(args) == 0
    assert capsys.readouterr().out.splitlines() == ["mosquitto: stopped", "kafka: stopped", "kafka node 1: stopped",
                                                    "kafka node 2: stopped", "kafka node 3: stopped"]
