"""Local brokers without a broker running: their errors, a stale pidfile, and the CLI (real runs:
integration/brokers/test_brokers.py)."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm_bridge.brokers import BrokerError, Kafka, Mosquitto, free_port
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
