"""Local brokers for real: Mosquitto and Kafka started, used, restarted and stopped, and the CLI that starts them
(their errors without a broker: unit/brokers/test_brokers.py)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm_bridge.brokers import BrokerError, Kafka, Mosquitto, free_port, port_in_use
from swarm_bridge.brokers.jvm import pauses_in
from swarm_bridge.brokers.mosquitto import mqtt_connack
from swarm_bridge.brokers.ports import wait_for_port
from swarm_bridge.brokers.process import ServiceProcess, service_status, stop_service

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(run_dir=tmp_path / "run", port=free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.mark.integration
def test_mosquitto_delivers_a_qos1_message(own_mosquitto: Mosquitto) -> None:
    import paho.mqtt.client as mqtt

    assert own_mosquitto.url == f"mqtt://127.0.0.1:{own_mosquitto.port}"
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda _c, _u, msg: received.put(msg)
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect("127.0.0.1", own_mosquitto.port, keepalive=10)
    client.loop_start()
    try:
        client.subscribe("test/brokers", qos=1)
        assert subscribed.wait(5), "no SUBACK within 5 s"
        info = client.publish("test/brokers", b"hello", qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published()
        message = received.get(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()
    assert (message.topic, message.payload, message.qos) == ("test/brokers", b"hello", 1)


@pytest.mark.integration
def test_a_subscriber_holds_as_many_unacked_messages_as_its_receive_maximum(own_mosquitto: Mosquitto) -> None:
    """The gateway acks a message only once Kafka confirmed it, so what Mosquitto lets it hold unacked bounds its
    rate (~window / round trip). Mosquitto caps that at max_inflight_messages even for an MQTT 5 client that asks
    for more: the tooling's broker lets a Receive Maximum of 65535 hold 3,000 (it was 1,000; Mosquitto's own
    default is 20)."""
    from swarm_bridge.transport.mqtt_client import Message, MqttClient, MqttOptions

    got: list[Message] = []
    sub = MqttClient(MqttOptions(host="127.0.0.1", port=own_mosquitto.port, client_id=f"sub-{uuid.uuid4().hex[:8]}",
                                 receive_max=65535), on_message=got.append)
    pub = MqttClient(MqttOptions(host="127.0.0.1", port=own_mosquitto.port, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                                 max_inflight=5000), auto_ack=True)
    sub.start()
    pub.start()
    try:
        sub.subscribe(["window/#"])
        for i in range(3000):
            pub.publish("window/x", b"%d" % i)
        deadline = time.monotonic() + 30
        while len(got) < 3000 and time.monotonic() < deadline:  # none of them acked
            time.sleep(0.05)
        assert len(got) == 3000, f"{len(got)} of 3000 arrived unacked"
        assert [m.payload for m in got] == [b"%d" % i for i in range(3000)]
    finally:
        pub.close()
        sub.close()


@pytest.mark.integration
def test_mosquitto_stop_frees_the_port_and_removes_the_pidfile(own_mosquitto: Mosquitto) -> None:
    pid_path = own_mosquitto.run_dir / "mosquitto.pid"
    assert pid_path.read_text().strip() == str(own_mosquitto.pid)
    assert service_status(own_mosquitto.run_dir, "mosquitto").running
    own_mosquitto.stop()
    assert not own_mosquitto.running
    assert not pid_path.exists()
    assert not port_in_use("127.0.0.1", own_mosquitto.port)
    assert "mosquitto version" in own_mosquitto.log_path.read_text()


@pytest.mark.integration
def test_wait_for_port_sees_a_listener_and_gives_up_on_a_free_port(own_mosquitto: Mosquitto) -> None:
    assert wait_for_port("127.0.0.1", own_mosquitto.port, timeout=2)
    started = time.monotonic()
    assert not wait_for_port("127.0.0.1", free_port(), timeout=0.3)
    assert time.monotonic() - started < 2


@pytest.mark.integration
def test_mosquitto_that_exits_early_reports_the_log_tail(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not a local address: mosquitto cannot bind it and exits at once.
    broker = Mosquitto(run_dir=tmp_path, port=free_port(), host="192.0.2.1")
    started = time.monotonic()
    with pytest.raises(BrokerError, match="exited during startup with status") as caught:
        broker.start()
    assert time.monotonic() - started < broker.ready_timeout
    assert caught.value.log_tail is not None
    assert "Error" in caught.value.log_tail
    assert "last lines of the mosquitto log" in str(caught.value)
    assert not (tmp_path / "mosquitto.pid").exists()


# --- ServiceProcess --------------------------------------------------------------------------------


def _sleeper(run_dir: Path) -> ServiceProcess:
    """A process that logs a line and sleeps; its argv names run_dir (as broker commands do)."""
    code = "import sys, time; print('sleeper up', flush=True); time.sleep(60)"
    return ServiceProcess(name="sleeper", run_dir=run_dir, argv=[sys.executable, "-c", code, str(run_dir)])


def test_wait_ready_times_out_with_the_log_tail(tmp_path: Path) -> None:
    process = _sleeper(tmp_path)
    process.start()
    try:
        with pytest.raises(BrokerError, match="not ready after") as caught:
            process.wait_ready(lambda: False, timeout=1.0)
        assert "sleeper up" in (caught.value.log_tail or "")
    finally:
        process.stop(timeout=5)
    assert not process.running
    assert not (tmp_path / "sleeper.pid").exists()


def test_wait_for_line_sees_only_this_runs_ready_line(tmp_path: Path) -> None:
    """The marker line (naming argv) and an earlier run's log do not count as ready; this run's line does."""
    code = "import sys, time; time.sleep(float(sys.argv[1])); print('svc: ready', flush=True); time.sleep(60)"
    first = ServiceProcess(name="svc", run_dir=tmp_path, argv=[sys.executable, "-c", code, "0", "svc: ready"])
    first.start()
    try:
        first.wait_for_line("svc: ready", timeout=30)
    finally:
        first.stop(timeout=5)
    second = ServiceProcess(name="svc", run_dir=tmp_path, argv=[sys.executable, "-c", code, "60", "svc: ready"])
    second.start()
    try:
        with pytest.raises(BrokerError, match="not ready after"):
            second.wait_for_line("svc: ready", timeout=1.0)
    finally:
        second.stop(timeout=5)
    assert second.returncode is not None and not second.running


def test_stop_service_works_from_the_pidfile_alone(tmp_path: Path) -> None:
    process = _sleeper(tmp_path)
    process.start()
    try:
        status = service_status(tmp_path, "sleeper")
        assert status.running and status.pid == process.pid
        assert str(status) == f"sleeper: running (pid {process.pid})"
        before = stop_service(tmp_path, "sleeper", timeout=5)
        assert before.pid == process.pid
        assert not service_status(tmp_path, "sleeper").running
        assert not (tmp_path / "sleeper.pid").exists()
    finally:
        process.stop(timeout=5)


# --- Kafka -----------------------------------------------------------------------------------------


def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    from confluent_kafka import Producer

    errors: list[object] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    producer.produce(topic, value=value, on_delivery=lambda err, _msg: errors.append(err))
    assert producer.flush(30) == 0, "message not delivered within 30 s"
    assert errors == [None]


def _consume_first(bootstrap: str, topic: str, timeout: float = 30.0) -> bytes:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                value = message.value()
                assert value is not None
                return value
        raise AssertionError(f"nothing consumed from {topic} within {timeout:.0f} s")
    finally:
        consumer.close()


@pytest.mark.integration
def test_kafka_logs_its_pauses_where_the_fleet_bench_reads_them(kafka: Kafka) -> None:
    """The session's Kafka has paused at least once since it started (start-up alone makes safepoints), each pause
    read with its operation and length."""
    _produce(kafka.bootstrap, f"pauses-{uuid.uuid4().hex[:8]}", b"x")
    pauses = pauses_in(kafka.pause_log.read_text(), 0, time.time() * 1000)
    assert pauses.count >= 1 and pauses.longest and 0 < pauses.max_ms <= pauses.total_ms
    assert pauses_in(kafka.pause_log.read_text(), time.time() * 1000 + 60_000, time.time() * 1000 + 120_000).count == 0


@pytest.mark.integration
def test_kafka_round_trip_survives_a_restart_on_the_same_run_dir(tmp_path: Path) -> None:
    port, controller_port = _distinct_free_ports()
    broker = Kafka(run_dir=tmp_path, port=port, controller_port=controller_port)
    assert broker.bootstrap == f"127.0.0.1:{port}"
    try:
        broker.start()
        assert broker.ready_seconds is not None and broker.ready_seconds < broker.ready_timeout
        _produce(broker.bootstrap, "test.brokers", b"kept")
        assert _consume_first(broker.bootstrap, "test.brokers") == b"kept"

        broker.stop()
        assert not broker.running
        assert not port_in_use("127.0.0.1", port)

        broker.start()
        assert _consume_first(broker.bootstrap, "test.brokers") == b"kept"
    finally:
        broker.stop()
    assert not (tmp_path / "kafka.pid").exists()
    assert broker.log_path.read_text().count("Kafka Server started") == 2


# --- CLI -------------------------------------------------------------------------------------------


def _distinct_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


_CLI = (
    "import argparse, sys\n"
    "from swarm_bridge.cli import broker\n"
    "parser = argparse.ArgumentParser(prog='swarm-bridge')\n"
    "broker.register(parser.add_subparsers(required=True))\n"
    "args = parser.parse_args(sys.argv[1:])\n"
    "sys.exit(args.run(args))\n"
)


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the broker CLI in a child process (so `start` must leave the broker detached)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, "-c", _CLI, *argv], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.mark.integration
def test_cli_start_status_stop_mosquitto(tmp_path: Path) -> None:
    port = free_port()
    run_dir = str(tmp_path)
    try:
        started = _cli("broker", "start", "mosquitto", "--run-dir", run_dir, "--mqtt-port", str(port))
        assert started.returncode == 0, started.stderr
        assert f"mqtt://127.0.0.1:{port}" in started.stdout
        assert mqtt_connack("127.0.0.1", port), "broker not reachable after the CLI exited"

        status = _cli("broker", "status", "--run-dir", run_dir)
        assert status.returncode == 0
        assert "mosquitto: running (pid" in status.stdout
        assert "kafka: stopped" in status.stdout

        stopped = _cli("broker", "stop", "mosquitto", "--run-dir", run_dir)
        assert stopped.returncode == 0, stopped.stderr
        assert "mosquitto: stopped (was pid" in stopped.stdout
        assert "mosquitto: stopped" in _cli("broker", "status", "--run-dir", run_dir).stdout
        assert not port_in_use("127.0.0.1", port)
    finally:
        stop_service(tmp_path, "mosquitto", timeout=10)


def _free_run(count: int) -> int:
    """The first of `count` consecutive loopback ports free right now."""
    for _ in range(50):
        first = free_port()
        if first + count < 65536 and not any(port_in_use("127.0.0.1", p) for p in range(first, first + count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports found")


@pytest.mark.integration
def test_cli_start_status_stop_a_three_node_kafka_cluster(tmp_path: Path) -> None:
    """`broker start kafka --kafka-brokers 3`: three nodes on --kafka-port and the two ports after it, detached; a
    record written with acks=all to a topic of 3 replicas reads back; status and stop name every node."""
    first = _free_run(6)
    run_dir = str(tmp_path)
    bootstrap = ",".join(f"127.0.0.1:{first + n}" for n in range(3))
    try:
        started = _cli("broker", "start", "kafka", "--kafka-brokers", "3", "--kafka-port", str(first),
                       "--run-dir", run_dir)
        assert started.returncode == 0, started.stderr
        assert f"kafka: 3-node cluster running; bootstrap {bootstrap}" in started.stdout
        for node in (1, 2, 3):
            assert f"kafka node {node}: running (pid" in started.stdout

        from confluent_kafka.admin import AdminClient

        from swarm_bridge.transport import ensure_kafka_topics

        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert len(admin.list_topics(timeout=30).brokers) == 3  # every node joined before `start` said running
        ensure_kafka_topics(bootstrap, ["test.cluster"])

        def replicas() -> set[int]:  # the node answering may learn of a new topic a moment after its creation
            topic = admin.list_topics("test.cluster", timeout=30).topics["test.cluster"]
            return {len(p.replicas) for p in topic.partitions.values()}
        deadline = time.monotonic() + 30
        while not replicas() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert replicas() == {3}
        _produce(bootstrap, "test.cluster", b"replicated")
        assert _consume_first(bootstrap, "test.cluster") == b"replicated"

        status = _cli("broker", "status", "--run-dir", run_dir).stdout
        assert "kafka: stopped" in status  # no single node here
        for node in (1, 2, 3):
            assert f"kafka node {node}: running (pid" in status
        stopped = _cli("broker", "stop", "kafka", "--run-dir", run_dir)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.count("stopped (was pid") == 3
        assert not any(port_in_use("127.0.0.1", p) for p in range(first, first + 6))
    finally:
        for node in (1, 2, 3):
            stop_service(tmp_path / "kafka-cluster" / f"node-{node}", "kafka", timeout=10)
